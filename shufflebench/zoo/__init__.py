"""The network zoo: named, parametrized builders (`registry`), the networks themselves (`networks`, imported on
first use so that importing the package does not import torch) and the papers' published figures (`papers`)."""
