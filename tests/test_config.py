"""Configuration: environment read once, typed and validated; bad values refuse to start."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_app, topics_of

from cds_service.config import ConfigError, Settings, load_settings
from hooks.knowledge_base import load_knowledge, thresholds_for_site


def test_defaults_without_environment() -> None:
    settings = load_settings(Settings, {}, {})
    assert settings.allowed_fhir_servers == ()
    assert settings.max_request_bytes == 5 * 1024 * 1024
    assert settings.auth == "off"


def test_environment_is_parsed_by_type() -> None:
    env = {
        "IVIG_CDS_ALLOWED_FHIR_SERVERS": "https://a.example/fhir, https://b.example/r4/",
        "IVIG_CDS_FHIR_TIMEOUT_S": "1.5",
        "IVIG_CDS_FHIR_MAX_PAGES": "4",
    }
    settings = load_settings(Settings, env, {})
    assert settings.allowed_fhir_servers == ("https://a.example/fhir", "https://b.example/r4/")
    assert settings.fhir_timeout_s == 1.5
    assert settings.fhir_max_pages == 4


def test_test_overrides_win_over_the_environment() -> None:
    kb = load_knowledge()
    thresholds, _ = thresholds_for_site(
        kb, {"IVIG_CDS_THROMBOSIS_AGE": "70"}, {"THROMBOSIS_AGE": 60}
    )
    assert thresholds.thrombosis_age == 60


def test_site_overrides_are_typed_and_named_in_the_knowledge_version() -> None:
    kb = load_knowledge()
    default, default_version = thresholds_for_site(kb, {}, {})
    raised, version = thresholds_for_site(kb, {"IVIG_CDS_THROMBOSIS_AGE": "70"}, {})
    assert default.thrombosis_age == 65 and raised.thrombosis_age == 70
    assert default_version == kb.version
    assert version.startswith(kb.version + "+site-") and version != default_version
    same, _ = thresholds_for_site(kb, {"IVIG_CDS_THROMBOSIS_AGE": "65"}, {})
    assert thresholds_for_site(kb, {"IVIG_CDS_THROMBOSIS_AGE": "65"}, {})[1] == kb.version
    assert same == default
    with pytest.raises(ConfigError, match="IVIG_CDS_THROMBOSIS_AGE"):
        thresholds_for_site(kb, {"IVIG_CDS_THROMBOSIS_AGE": "sixty"}, {})
    with pytest.raises(ConfigError, match="IVIG_CDS_THROMBOSIS_AGE: expected a whole number"):
        thresholds_for_site(kb, {"IVIG_CDS_THROMBOSIS_AGE": "65.5"}, {})


def test_a_threshold_fixed_by_its_source_cannot_be_overridden() -> None:
    with pytest.raises(ConfigError, match=r"IVIG_CDS_IGA_DEFICIENT_BELOW_MG_DL: .*fixed"):
        thresholds_for_site(load_knowledge(), {"IVIG_CDS_IGA_DEFICIENT_BELOW_MG_DL": "10"}, {})


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"IVIG_CDS_AUTH": "jwt"}, "IVIG_CDS_AUTH"),
        ({"IVIG_CDS_FHIR_MAX_PAGES": "ten"}, "IVIG_CDS_FHIR_MAX_PAGES"),
        ({"IVIG_CDS_ALLOWED_FHIR_SERVERS": "ftp://x.example"}, "IVIG_CDS_ALLOWED_FHIR_SERVERS"),
        ({"IVIG_CDS_FHIR_TIMEOUT_S": "0"}, "IVIG_CDS_FHIR_TIMEOUT_S"),
    ],
)
def test_bad_values_refuse_to_start_and_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(Settings, env, {})


def test_thresholds_reach_the_rules(tmp_path: Path) -> None:
    """A deployment that raises the thrombosis age stops flagging a 65-year-old."""
    from conftest import full_prefetch, hook_request, order_for, scenario_resources

    resources = scenario_resources("ivig-in-age-65")
    body = hook_request(
        "order-select",
        "ivig-in-age-65",
        [order_for("privigen-iv", "ivig-in-age-65")],
        prefetch=full_prefetch(resources),
    )
    default = make_app(tmp_path).test_client().post("/cds-services/ivig-order-select", json=body)
    raised = (
        make_app(tmp_path, THROMBOSIS_AGE=70)
        .test_client()
        .post("/cds-services/ivig-order-select", json=body)
    )
    assert "thrombosis-risk" in topics_of(default.get_json()["cards"])
    assert "thrombosis-risk" not in topics_of(raised.get_json()["cards"])


def test_evaluation_date_fixes_the_clock_for_demos(tmp_path: Path) -> None:
    from cds_service import create_app

    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'f.sqlite3'}",
            "EVALUATION_DATE": "2026-06-15",
            "AUDIT_SPOOL_DIR": str(tmp_path / "audit-spool"),
        }
    )
    assert app.extensions["ivig_cds"].clock().isoformat() == "2026-06-15T12:00:00+00:00"
    with pytest.raises(ConfigError, match="IVIG_CDS_EVALUATION_DATE"):
        load_settings(Settings, {"IVIG_CDS_EVALUATION_DATE": "15/06/2026"}, {})


def test_an_audit_spool_it_cannot_write_refuses_to_start(tmp_path: Path) -> None:
    from cds_service import create_app

    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match=r"IVIG_CDS_AUDIT_SPOOL_DIR=.*cannot keep audit records"):
        create_app(
            {
                "TESTING": True,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'f.sqlite3'}",
                "AUDIT_SPOOL_DIR": str(tmp_path / "a-file" / "spool"),
            }
        )
