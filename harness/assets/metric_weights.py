"""The weight and parameter files of the built-in metrics, declared as assets.

They live in the assets layer (not with the metrics) so that ``bench assets import|verify`` and
every loader that needs them (NIQE, LPIPS, LD-RPS's perceptual loss) find the declarations
without importing the metric code, and so that nothing below the metrics layer imports it.
"""

from __future__ import annotations

from harness.assets.cache import Asset, AssetFile, register_asset

NIQE_PARAMS = register_asset(Asset(
    name="niqe-official",
    description="NIQE pristine MVG model of the official LIVE release (BasicSR's npz copy, "
                "bit-identical mu/cov to modelparameters.mat)",
    licence="Apache-2.0 (BasicSR); LIVE/UT Austin NIQE release notice",
    homepage="https://live.ece.utexas.edu/research/quality/niqe_release.zip",
    files=(AssetFile(
        "niqe_pris_params.npz",
        "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296",
        "https://raw.githubusercontent.com/XPixelGroup/BasicSR/"
        "8d56e3a045f9fb3e1d8872f92ee4a4f07f886b0a/basicsr/metrics/niqe_pris_params.npz",
        11850, package=("mmagic", "mmagic/evaluation/metrics/niqe_pris_params.npz")),),
))

LPIPS_LINEAR = register_asset(Asset(
    name="lpips-linear-v0.1",
    description="LPIPS v0.1 linear calibration layers (alex, vgg)",
    licence="BSD-2-Clause",
    homepage="https://github.com/richzhang/PerceptualSimilarity",
    files=(
        AssetFile("alex.pth", "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
                  "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/"
                  "082bb24f84c091ea94de2867d34c4544f68e0963/lpips/weights/v0.1/alex.pth", 6009),
        AssetFile("vgg.pth", "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
                  "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/"
                  "082bb24f84c091ea94de2867d34c4544f68e0963/lpips/weights/v0.1/vgg.pth", 7289),
    ),
))

#: torchvision publishes only a sha256 prefix (in the file name), and torchvision checks only that.
#: The full digests are those Hugging Face's LFS pointers publish for copies of these exact files
#: (alexnet: blanchon/image-gs-models-utils and CSWRY/VOSR, torch/checkpoints/
#: alexnet-owt-7be5be79.pth, 244408911 bytes; vgg16: Keiser41/mangaaa model/vgg16-397923af.pth),
#: each starting with torchvision's published prefix: ``bench assets import`` matches full
#: digests only.
LPIPS_BACKBONES = register_asset(Asset(
    name="torchvision-imagenet-backbones",
    description="torchvision ImageNet backbones LPIPS needs (AlexNet, VGG16)",
    licence="BSD-3-Clause (torchvision); ImageNet terms",
    homepage="https://pytorch.org/vision/stable/models.html",
    files=(
        AssetFile("alexnet-owt-7be5be79.pth",
                  "7be5be791159472b1fbf3c69796f7cb30dca7ad8466c2df70058c37116cdee02",
                  "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"),
        AssetFile("vgg16-397923af.pth",
                  "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0",
                  "https://download.pytorch.org/models/vgg16-397923af.pth"),
    ),
))
