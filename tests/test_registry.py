"""The generic registry: aliases, placeholders, entry points, did-you-mean, type checks."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest

from harness.api import registry as registry_module
from harness.api.registry import Registry, UnknownNameError


class Base:
    pass


class TestRegistryBasics:
    def test_aliases_resolve_to_the_canonical_object(self):
        reg = Registry("widget", base_cls=Base)

        @reg.register("alpha", "a", "first")
        class Alpha(Base):
            pass

        assert reg.get("alpha") is Alpha
        assert reg.get("a") is Alpha and reg.get("first") is Alpha
        assert reg.get("ALPHA") is Alpha  # case-insensitive fallback
        assert reg.names() == ["alpha"]
        assert reg.aliases_of("alpha") == ["a", "first"]

    def test_unknown_name_suggests_close_matches(self):
        reg = Registry("widget")
        reg.register("zero-dce", target=object())
        reg.register("zero-dce-pp", target=object())
        with pytest.raises(UnknownNameError) as info:
            reg.get("zero-dc")
        message = str(info.value)
        assert "Did you mean 'zero-dce'" in message
        assert "bench list widgets" in message
        assert info.value.suggestions[0] == "zero-dce"

    def test_duplicate_name_or_alias_is_refused(self):
        reg = Registry("widget")
        reg.register("a", "x", target=1)
        with pytest.raises(ValueError, match="already taken"):
            reg.register("a", target=2)
        with pytest.raises(ValueError, match="already points"):
            reg.register("b", "x", target=3)

    def test_base_class_is_enforced(self):
        reg = Registry("widget", base_cls=Base)
        with pytest.raises(TypeError, match="not a subclass"):
            reg.register("bad", target=int)

    def test_lazy_placeholder_is_imported_on_first_get(self):
        reg = Registry("widget")
        reg.register_lazy("ordered", "collections:OrderedDict", "od")
        assert "ordered" in reg.names()
        from collections import OrderedDict

        assert reg.get("od") is OrderedDict

    def test_placeholder_for_missing_package_names_the_extra(self):
        reg = Registry("widget")
        reg.register_lazy("mamba", "definitely_not_installed_pkg:Thing")
        with pytest.raises(ImportError, match="pip install"):
            reg.get("mamba")

    def test_resolver_serves_prefixed_spec_strings(self):
        reg = Registry("widget")
        reg.add_resolver("synth:", lambda name: ("built", name))
        assert reg.get("synth:kodak24:noise@3") == ("built", "synth:kodak24:noise@3")
        assert "synth:anything" in reg

    def test_entry_point_plugins_are_discovered(self, monkeypatch):
        ep = SimpleNamespace(name="plugin-widget", value="collections:Counter")
        monkeypatch.setattr(registry_module, "entry_points",
                            lambda group: [ep] if group == "test.widgets" else [])
        reg = Registry("widget", entry_point_group="test.widgets")
        from collections import Counter

        assert reg.get("plugin-widget") is Counter

    def test_broken_builtin_module_is_reported_not_fatal(self):
        reg = Registry("widget", modules=("definitely_not_a_module_xyz",))
        assert reg.names() == []
        assert "definitely_not_a_module_xyz" in reg.import_errors


class TestBuiltinTables:
    def test_every_builtin_restorer_entry_is_registered_under_its_name(self):
        from harness.api.restorer import RESTORERS, Restorer
        from restorers import BUILTIN_RESTORERS

        for name, target in BUILTIN_RESTORERS.items():
            module_name, _, attr = target.partition(":")
            cls = getattr(importlib.import_module(module_name), attr)
            assert issubclass(cls, Restorer)
            assert cls.name == name, f"{target} is registered as {cls.name!r}, table says {name!r}"
            assert RESTORERS.get(name) is cls
            assert cls.description, f"{name} has no description for `bench list restorers`"

    def test_every_task_builds_and_describes_itself(self):
        from harness.api.task import TASKS, build_task

        assert "demo" in TASKS.names()
        for name in TASKS.names():
            task = build_task(name)
            assert task.name, name
            assert task.description, f"{name} has no description"
            task.conventions.as_params()  # valid conventions
