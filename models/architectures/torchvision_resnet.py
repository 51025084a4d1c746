"""torchvision's ImageNet ResNet-18 with a 10-class ``fc``, for teams that fine-tune it.

Built with ``weights=None``: nothing is downloaded; the team's checkpoint brings the weights.
"""

from torch import nn


def torchvision_resnet18(num_classes: int = 10) -> nn.Module:
    from torchvision.models import resnet18

    return resnet18(weights=None, num_classes=num_classes)
