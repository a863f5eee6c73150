"""The `kindred` command: CSV import, profile inspection, config errors, demo data."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import KINDRED, Server

pytestmark = pytest.mark.e2e

CSV = """customerid,email,loyalty_tier,attribute:email_opt_in,mpid
csv-1,csv1@example.com,gold,yes,
csv-2,csv2@example.com,silver,no,
csv-3,,bronze,,not-a-number
,,orphan,,
csv-4,csv4@example.com,gold,yes,
csv-5,csv5@example.com
"""


def test_csv_import_reports_bad_rows_by_line_and_keeps_the_rest(
    server: Server, tmp_path: Path
) -> None:
    path = tmp_path / "users.csv"
    path.write_text(CSV)
    result = server.cli("import", "csv", str(path), "--input", "csv", check=False)
    assert result.returncode == 1  # some rows failed
    report = json.loads(result.stdout)
    assert report["rows"] == 6
    assert report["applied"] == 3
    assert [e["line"] for e in report["errors"]] == [4, 7]
    assert "mpid" in report["errors"][0]["error"]
    assert "cells" in report["errors"][1]["error"]
    # "orphan" has neither MPID nor identity: accepted but resolves to nobody
    assert report["unchanged"] == 1
    profile = server.profile(identity="customer_id=csv-4")
    assert profile is not None
    attributes = profile["workspaces"]["1"]["attributes"]
    assert attributes["loyalty_tier"]["value"] == "gold"
    assert attributes["email_opt_in"]["value"] == "yes"
    assert attributes["loyalty_tier"]["priority"] == 20  # the CSV rung of the ladder
    assert profile["user_identities"]["email"]["value"] == "csv4@example.com"
    again = json.loads(server.cli("import", "csv", str(path), "--input", "csv", check=False).stdout)
    assert again["applied"] == 0  # re-importing the same file changes nothing


def test_csv_rows_rank_below_the_sdk(server: Server, tmp_path: Path) -> None:
    httpx.post(
        f"{server.url}/v2/events",
        auth=("server-key", "server-secret"),
        json={"user_identities": {"customer_id": "csv-9"}, "user_attributes": {"plan": "pro"}},
    )
    path = tmp_path / "plans.csv"
    path.write_text("customer_id,plan,region\ncsv-9,free,EU\n")
    server.cli("import", "csv", str(path), "--input", "csv")
    profile = server.profile(identity="customer_id=csv-9")
    assert profile is not None
    attributes = profile["workspaces"]["1"]["attributes"]
    assert attributes["plan"]["value"] == "pro"
    assert attributes["region"]["value"] == "EU"


def test_import_unknown_input_is_a_clear_error(server: Server, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("email\na@b.c\n")
    result = server.cli("import", "csv", str(path), "--input", "nope", check=False)
    assert result.returncode != 0
    assert "no input named 'nope'" in result.stderr


def test_profile_get_needs_exactly_one_selector(server: Server) -> None:
    result = server.cli("profile", "get", check=False)
    assert result.returncode != 0
    assert "exactly one of --mpid or --identity" in result.stderr
    missing = server.cli("profile", "get", "--identity", "email=nobody@example.com", check=False)
    assert missing.returncode != 0
    assert "no profile" in missing.stderr


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[org]\nid = 'one'\n[[accounts]]\nid = 1\nname = 'a'\n", "org.id: Expected `int`"),
        (
            "[org]\nid = 1\n[[accounts]]\nid = 1\nname = 'a'\nidentity_scop = 'x'\n",
            "unknown field `identity_scop`",
        ),
        ("accounts = []\n[org]\nid = 1\n", "accounts: at least one account"),
        (
            "[org]\nid = 1\n[[accounts]]\nid = 1\nname = 'a'\n[[accounts.workspaces]]\nid = 1\n"
            "name = 'w'\n[[accounts.workspaces.inputs]]\nname = 'i'\nsource_type = 'sever'\n"
            "api_key = 'k'\napi_secret = 's'\n",
            "accounts[0].workspaces[0].inputs[0].source_type: Invalid enum value 'sever'",
        ),
        (
            "[org]\nid = 1\n[[accounts]]\nid = 1\nname = 'a'\n[[accounts.workspaces]]\nid = 1\n"
            "name = 'w'\n[[accounts.workspaces.inputs]]\nname = 'i'\nsource_type = 'server'\n"
            "api_key = 'k'\napi_secret = 's'\nprotection = 'read_only'\n",
            "platform inputs are always create_update",
        ),
    ],
)
def test_invalid_config_fails_at_start_naming_the_key(
    tmp_path: Path, toml: str, message: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = subprocess.run(
        [*KINDRED, "serve", "--config", str(config), "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr


def test_demo_data_loads_once(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*KINDRED, *args, "--data-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )

    assert "110 demo batches applied" in run("demo").stdout
    assert "0 demo batches applied" in run("demo").stdout
    profile = json.loads(run("profile", "get", "--identity", "customer_id=demo-0001").stdout)
    assert profile["workspaces"]["1"]["attributes"]["$FirstName"]["value"]
    compacted = run("compact").stdout
    assert "MB before" in compacted
    again = json.loads(run("profile", "get", "--identity", "customer_id=demo-0001").stdout)
    assert again == profile  # compaction keeps every row as it was


def test_csv_import_over_http(server: Server) -> None:
    body = "customer_id,plan\ncsv-http-1,pro\n,\ncsv-http-2,free,extra\n"
    response = httpx.post(
        f"{server.url}/v2/import/csv",
        content=body.encode(),
        auth=("csv-key", "csv-secret"),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 200
    report = response.json()
    assert report["applied"] == 1
    assert [e["line"] for e in report["errors"]] == [4]
    assert server.profile(identity="customer_id=csv-http-1") is not None
    wrong_input = httpx.post(
        f"{server.url}/v2/import/csv", content=body.encode(), auth=("server-key", "server-secret")
    )
    assert wrong_input.status_code == 403


def test_the_cli_finds_the_servers_data_directory_and_never_makes_an_empty_store(
    server: Server, tmp_path: Path
) -> None:
    batch = {"environment": "development", "user_identities": {"customer_id": "where-1"}}
    sent = httpx.post(f"{server.url}/v2/events", json=batch, auth=("server-key", "server-secret"))
    assert sent.status_code == 202
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [*KINDRED, "profile", "get", "--identity", "customer_id=where-1"]
    command += ["--config", str(server.config)]
    env = {k: v for k, v in server.env.items() if k != "KINDRED_DATA_DIR"}

    def run(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=elsewhere,
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    lost = run({})
    assert lost.returncode != 0
    assert str(elsewhere / "data" / "kindred.db") in lost.stderr
    assert not (elsewhere / "data").exists()  # nothing made where the user did not mean
    found = run({"KINDRED_DATA_DIR": str(server.data_dir)})
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["user_identities"]["customer_id"]["value"] == "where-1"


@pytest.mark.parametrize(
    "args",
    [
        ("dsr", "show", "no-such-request", "--workspace", "99"),
        ("identity", "unmerge", "1", "--workspace", "99"),
    ],
)
def test_an_unknown_workspace_is_named_by_the_command(
    server: Server, args: tuple[str, ...]
) -> None:
    result = server.cli(*args, check=False)
    assert result.returncode == 1, result.stderr
    assert "--workspace: no workspace with id 99" in result.stderr
