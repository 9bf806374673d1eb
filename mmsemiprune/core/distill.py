"""Knowledge distillation loss (Hinton et al. 2015), plain PyTorch."""
import torch
import torch.nn.functional as F

__all__ = ['kd_loss']


def kd_loss(student_scores: torch.Tensor, teacher_scores: torch.Tensor, temperature: float,
            weight: float = 1.0) -> torch.Tensor:
    """``weight · T² · KL(softmax(t / T) ‖ softmax(s / T))``, batch mean, computed in float32.

    ``student_scores`` / ``teacher_scores``: ``(N, classes)`` logits (the teacher's are not differentiated).
    """
    T = float(temperature)
    log_p = torch.log_softmax(student_scores.float() / T, dim=1)
    q = torch.softmax(teacher_scores.detach().float() / T, dim=1)
    return float(weight) * T * T * F.kl_div(log_p, q, reduction='batchmean')
