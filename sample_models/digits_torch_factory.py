"""The factory for `digits_cnn_torch.pth` (a state_dict): `teacher.factory: "digits_torch_factory:build_model"`.

A factory is how edgekit rebuilds a torch module whose weights are saved as a state_dict, without
unpickling code from the weights file. It is the only route by which a recipe imports user code.
"""

from edgekit.backends.torch import zoo


def build_model():
    """edgekit's torch `cnn_small` for 8x8x1 digits with 10 classes (untrained)."""
    return zoo.build("cnn_small", 1.0, (8, 8, 1), 10, "classification")
