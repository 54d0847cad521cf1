"""Config validation: errors name the field; YAML round-trip; overrides; stable hash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dino_core.config import ConfigError, DinoConfig, build_config, load_config

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_the_paper_recipe() -> None:
    c = DinoConfig()
    assert c.loss.student_temp == 0.1 and c.loss.warmup_teacher_temp == 0.04
    assert c.loss.teacher_temp == 0.07 and c.loss.warmup_teacher_temp_epochs == 30
    assert c.loss.center_momentum == 0.9 and c.teacher.momentum == 0.996
    assert c.head.out_dim == 65536 and c.head.bottleneck_dim == 256
    assert c.optim.lr == 0.0005 and c.optim.min_lr == 1e-6 and c.optim.warmup_epochs == 10
    assert (c.optim.weight_decay, c.optim.weight_decay_end, c.optim.clip_grad) == (0.04, 0.4, 3.0)
    assert c.crops.global_scale == (0.4, 1.0) and c.crops.local_scale == (0.05, 0.4)
    assert c.crops.blur_p == (1.0, 0.1, 0.5) and c.crops.solarize_p == 0.2


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"loss.teacher_temp": 0}, "loss.teacher_temp"),
        ({"teacher.momentum": 1.5}, "teacher.momentum"),
        ({"head.out_dim": 1}, "head.out_dim"),
        ({"crops.global_size": 30}, "crops.global_size"),
        ({"optim.warmup_epochs": 200}, "optim.warmup_epochs"),
        ({"crops.local_scale": [0.5, 0.1]}, "crops.local_scale"),
        ({"loss.teacher_tmp": 0.05}, "loss.teacher_tmp"),
    ],
)
def test_errors_name_the_field(override: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        build_config(None, override)


def test_override_strings_and_unknown_section() -> None:
    c = build_config(None, ["loss.teacher_temp=0.05", "crops.local_number=0", "data.root=null"])
    assert c.loss.teacher_temp == 0.05 and c.crops.local_number == 0 and c.data.root is None
    with pytest.raises(ConfigError, match="lose"):
        build_config(None, ["lose.teacher_temp=0.05"])
    with pytest.raises(ConfigError, match=re.escape("section.field=value")):
        build_config(None, ["loss.teacher_temp"])


def test_yaml_round_trip_and_hash(tmp_path: Path) -> None:
    c = build_config(None, {"loss.teacher_temp": 0.05})
    p = tmp_path / "c.yaml"
    p.write_text(c.to_yaml())
    back = load_config(p)
    assert back == c and back.config_hash() == c.config_hash()
    assert build_config(None, {"loss.teacher_temp": 0.06}).config_hash() != c.config_hash()
    assert c.flat()["loss.teacher_temp"] == 0.05


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("model: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")


@pytest.mark.parametrize("preset", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_presets_validate(preset: Path) -> None:
    load_config(preset)


def test_dino_core_imports_no_service_package() -> None:
    import ast

    banned = {"ray", "mlflow", "fastapi", "sqlalchemy", "worker", "orchestrator", "api"}
    for path in (REPO / "dino_core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                mods = [node.module]
            else:
                continue
            for m in mods:
                assert m.split(".")[0] not in banned, f"{path} imports {m}"


def test_dinov2_options_default_to_dino_v1_and_are_flat_params() -> None:
    """Every option is an MLflow param (the worker logs ``flat()``), so a grid's axes show in
    the compare view; the defaults are DINO v1's."""
    flat = build_config().flat()
    v1 = {
        "loss.centering": "ema",
        "loss.koleo_weight": 0.0,
        "loss.ibot_weight": 0.0,
        "model.num_registers": 0,
        "model.layerscale": None,
        "model.drop_path_uniform": False,
        "optim.layerwise_decay": 1.0,
        "optim.patch_embed_lr_mult": 1.0,
        "optim.lr_scaling": "linear",
    }
    assert {k: flat[k] for k in v1} == v1
    for key in ("loss.sk_iterations", "ibot.mask_ratio", "ibot.mask_probability",
                "ibot.separate_head", "ibot.out_dim", "ibot.student_temp", "ibot.teacher_temp",
                "ibot.center_momentum"):  # fmt: skip
        assert key in flat, key
    assert flat["ibot.mask_ratio"] == [0.1, 0.5] and flat["loss.sk_iterations"] == 3
