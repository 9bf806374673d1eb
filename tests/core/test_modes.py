"""core/modes.py: the pruning modes as registered strategy objects, and what each must provide."""
import copy
import pickle

import pytest
import torch

from mmsemiprune.core.cascade import MODES as CASCADE_MODES
from mmsemiprune.core.modes import MODES, PruneMode, get_mode, register_mode


def test_the_four_modes_are_registered_by_name():
    assert MODES == CASCADE_MODES == ('semi', 'structured', 'unstructured', 'ctf')
    for name in MODES:
        mode = get_mode(name)
        assert isinstance(mode, PruneMode) and mode.name == name and get_mode(mode) is mode
        assert mode.entries or mode.groups
        assert mode.gate_mode in ('learned', 'group', 'entry')
        assert not mode.gated or (mode.entries and mode.groups)
    with pytest.raises(ValueError, match='unknown pruning mode .bogus.; choose one of semi, structured'):
        get_mode('bogus')


def test_a_taken_name_is_refused():
    class Again(PruneMode):
        name = 'semi'

    with pytest.raises(ValueError, match='taken'):
        register_mode(Again)


@pytest.mark.parametrize('name', MODES)
def test_copies_and_pickles_refer_to_the_registered_mode(name):
    mode = get_mode(name)
    assert copy.deepcopy(mode) is mode and pickle.loads(pickle.dumps(mode)) is mode


@pytest.mark.parametrize('name', MODES)
def test_keep_ratio_and_combine_agree(name):
    """ρ > t exactly where ``keep`` keeps at threshold t, and the soft combination of hard parts is the hard mask."""
    mode = get_mode(name)
    g = torch.Generator().manual_seed(0)
    group, entry = torch.rand(500, generator=g), torch.rand(500, generator=g)
    decides = torch.rand(500, generator=g) > 0.5 if mode.gated else None
    for t in (0.1, 0.5, 0.9):
        kg = group > t if mode.groups else None
        ke = entry > t if mode.entries else None
        kept = mode.keep(kg, ke, decides)
        rho = mode.ratio(group if mode.groups else None, entry if mode.entries else None, decides)
        assert torch.equal(kept, rho > t)
        soft = mode.combine(None if kg is None else kg.float(), None if ke is None else ke.float(),
                            None if decides is None else decides.float())
        assert torch.equal(soft, kept.float())
