"""mmsemiprune: differentiable semi-structured pruning of skeleton GCNs, as an MMAction2 plugin.

Dependency ranges are the honest ones (what the code needs); `requirements/pinned.txt` is the exact
set known to work (Python 3.11, torch 2.13.0 CPU, mmengine 0.10.7, mmcv-lite 2.0.1, mmaction2 1.1.0).
MMCV is an extra because either `mmcv` or `mmcv-lite` provides the `mmcv` package: pick one.
"""
from setuptools import find_packages, setup

setup(
    name='mmsemiprune',
    version='0.1.0',
    description='Differentiable semi-structured pruning of skeleton GCNs (ST-GCN, ST-GCN++, AAGCN, CTR-GCN) '
    'for MMAction2',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    python_requires='>=3.9',
    packages=find_packages(include=['mmsemiprune', 'mmsemiprune.*']),
    install_requires=[
        'torch>=2.1',
        'mmengine>=0.10.0,<0.11',
        'mmaction2>=1.1.0,<1.2.0',  # 1.2.0 on PyPI is broken (its wheel lacks mmaction/models/localizers/drn)
        'numpy>=1.24',
    ],
    extras_require={
        'lite': ['mmcv-lite>=2.0.0,<2.2'],
        'mmcv': ['mmcv>=2.0.0,<2.2'],
        'export': ['onnx>=1.15', 'onnxruntime>=1.17'],
        'leaderboard': ['matplotlib>=3.7'],
        'tests': ['pytest>=7', 'onnx>=1.15', 'onnxruntime>=1.17', 'matplotlib>=3.7'],
    },
    license='Apache-2.0',
    classifiers=['Programming Language :: Python :: 3', 'Topic :: Scientific/Engineering :: Artificial Intelligence'],
)
