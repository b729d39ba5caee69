"""The network zoo: the pure registry of named, parametrized builders (`registry`), the networks that register
themselves there (`networks`), the loader that imports them (`catalog`: what the rest of shufflebench uses, so that
importing the package alone does not import torch) and the papers' published figures (`papers`)."""
