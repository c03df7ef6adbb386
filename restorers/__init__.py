"""Built-in restorers: the single name → ``"module:Class"`` table.

Each entry is imported only when used (or listed), so optional heavy dependencies of one method
never break another. A module registers its class with ``@register_restorer(name, *aliases)``;
``tests/test_registries.py`` checks that every entry here names a class registered under the
same name. External packages plug in through the ``restorebench.restorers`` entry-point group.
"""

from harness.restorer import RESTORERS

BUILTIN_RESTORERS: dict[str, str] = {
    "identity": "restorers.identity:Identity",
    "nlm": "restorers.baselines.nlm:NonLocalMeans",
    "gamma": "restorers.baselines.gamma:GammaCorrection",
    "clahe": "restorers.baselines.clahe:CLAHE",
    "lime": "restorers.baselines.lime:LIME",
    "cbm3d": "restorers.baselines.cbm3d:CBM3D",
    "wiener": "restorers.baselines.wiener:WienerDeconvolution",
    "richardson-lucy": "restorers.baselines.richardson_lucy:RichardsonLucy",
    "dcp": "restorers.baselines.dcp:DarkChannelPrior",
    "underwater-cb": "restorers.baselines.underwater:UnderwaterColorBalance",
    "zero-dce": "restorers.baselines.zero_dce:ZeroDCE",
    "zero-dce-pp": "restorers.baselines.zero_dce_pp:ZeroDCEPP",
    "sci": "restorers.baselines.sci:SCI",
    "aod-net": "restorers.baselines.aod_net:AODNetRestorer",
    "dncnn": "restorers.baselines.dncnn:DnCNNRestorer",
    "ffdnet": "restorers.baselines.ffdnet:FFDNetRestorer",
    "unfoldldm": "restorers.unfoldldm.restorer:UnfoldLDM",
    "dgunet-pnp": "restorers.unfoldldm.dgunet:DGUNetPnP",
}

for _name, _target in BUILTIN_RESTORERS.items():
    RESTORERS.register_lazy(_name, _target)

#: `bench run` with no arguments: the input itself and a classical denoiser, both weight-free.
RESTORERS.set_defaults("identity", "nlm")
