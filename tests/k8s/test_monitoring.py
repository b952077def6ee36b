"""Alert rules (promtool check/test, chart and file agree) and Grafana dashboards (structure, metric
names from the catalog, every query parsed by a real Prometheus)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from videop2r.local_services import free_port
from videop2r.metrics import CATALOG, SGLANG_SERIES, exported_series

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra" / "prometheus" / "alerts.yaml"
RULE_TESTS = ROOT / "infra" / "prometheus" / "alerts_test.yaml"
DASHBOARDS = sorted((ROOT / "infra" / "dashboards").glob("*.json"))
CHART = ROOT / "charts" / "videop2r"
EXPORTED = {series for spec in CATALOG.values() for series in exported_series(spec)}
# Series Prometheus makes itself (not exported by our code), and the SGLang pods' own.
PROMETHEUS_SERIES = {"up", *SGLANG_SERIES}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (run `bash infra/tools/prometheus.sh`)")
    return path


# -- metric names in PromQL -------------------------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (strings, label matchers, ranges, grouping removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if text[match.end():].lstrip().startswith("(") or match.group(0) in PROMQL_WORDS:
            continue  # a function or aggregation, or a keyword
        names.add(match.group(0))
    return names


def test_metric_name_extraction():
    assert metric_names('sum by (le, service) (rate(videop2r_x_bucket{service=~"a|b"}[$__rate_interval]))') == {
        "videop2r_x_bucket"}
    assert metric_names("histogram_quantile(0.9, sum by (le) (rate(m_bucket[5m]))) > 1e-3 and on (run) up") == {
        "m_bucket", "up"}
    assert metric_names("a / ignoring (x) group_left (y) b offset 5m") == {"a", "b"}
    assert metric_names('max(x{run=~"$run"}) == bool 0') == {"x"}


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable of every dashboard."""
    queries = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                queries.append((f"{path.name}: {panel['title']} [{target['refId']}]", target["expr"]))
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["query"]["query"])
                assert inner, f"{path.name}: ${variable['name']} is not label_values(metric, label)"
                queries.append((f"{path.name}: ${variable['name']}", inner.group(1)))
    return queries


def rule_expressions() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(f"{RULES.name}: {rule['alert']}", rule["expr"]) for group in groups for rule in group["rules"]]


def test_dashboards_and_rules_use_only_catalogued_metrics():
    everything = dashboard_queries() + rule_expressions()
    assert len(everything) > 40
    unknown = [(where, name) for where, expr in everything for name in metric_names(expr)
               if name not in EXPORTED | PROMETHEUS_SERIES]
    assert not unknown, unknown
    used = {name for _, expr in everything for name in metric_names(expr)}
    for required in ("videop2r_reward", "videop2r_advantage_collapse_fraction", "videop2r_kl",
                     "videop2r_segment_length_tokens", "videop2r_think_answer_mismatch_rate",
                     "videop2r_rollout_tokens_per_second", "videop2r_reward_request_seconds_bucket",
                     "videop2r_judge_verdicts_total", "videop2r_judge_cache_hits_total",
                     "videop2r_rollout_generated_tokens_total", "videop2r_rollout_endpoint_weight_version",
                     "videop2r_rollout_logprob_abs_diff", *SGLANG_SERIES):
        assert required in used, f"no dashboard shows {required}"


def test_dashboards_are_well_formed_grafana_models():
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] not in uids and len(board["uid"]) <= 40
        uids.add(board["uid"])
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in board["panels"]:
            grid = panel["gridPos"]
            assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, f"{path.name}: {panel['title']}"
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            refs = [t["refId"] for t in panel["targets"]]
            assert len(refs) == len(set(refs))
            for target in panel["targets"]:
                used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval"}
                assert used <= set(variables), f"{path.name}: {panel['title']} uses undefined {used}"


# -- alert rules ------------------------------------------------------------------------------------

def test_promtool_checks_the_rules():
    done = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_promtool_unit_tests_pass():
    done = subprocess.run([tool("promtool"), "test", "rules", str(RULE_TESTS)], capture_output=True, text=True,
                          timeout=60, cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]}
    cases = [case for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in alerts:
        mine = [case for case in cases if case["alertname"] == alert]
        assert any(case["exp_alerts"] for case in mine), f"{alert} never tested firing"
        assert any(not case["exp_alerts"] for case in mine), f"{alert} never tested quiet"


def test_a_broken_rule_fails_its_unit_test(tmp_path):
    """The unit tests can fail: with the collapse threshold raised above 0.9 the firing case breaks."""
    text = RULES.read_text().replace("videop2r_advantage_collapse_fraction) > 0.8", "videop2r_advantage_collapse_fraction) > 0.95")
    assert text != RULES.read_text()
    (tmp_path / "alerts.yaml").write_text(text)
    shutil.copy(RULE_TESTS, tmp_path / "alerts_test.yaml")
    done = subprocess.run([tool("promtool"), "test", "rules", "alerts_test.yaml"], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert done.returncode != 0 and "VideoP2RAdvantageCollapse" in done.stdout + done.stderr


def chart_rule_groups(helm_run, *values: str) -> list:
    done = helm_run("template", "rel", str(CHART), "--api-versions", "monitoring.coreos.com/v1",
                    "--show-only", "templates/prometheusrule.yaml", *values)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["spec"]["groups"]


def test_the_rules_file_is_the_chart_rendering(helm_run):
    assert chart_rule_groups(helm_run) == yaml.safe_load(RULES.read_text())["groups"], \
        "infra/prometheus/alerts.yaml is stale: run infra/prometheus/render-alerts.sh"


def test_rules_with_other_thresholds_pass_promtool(helm_run, tmp_path):
    groups = chart_rule_groups(helm_run, "-f", str(CHART / "ci" / "everything-values.yaml"),
                               "--set", "monitoring.prometheusRule.stepStalledMinutes=45")
    exprs = {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}
    assert exprs["VideoP2RAdvantageCollapse"].endswith("> 0.6")
    assert "[45m]" in exprs["VideoP2RTrainingStepStalled"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    done = subprocess.run([tool("promtool"), "check", "rules", str(tmp_path / "rules.yaml")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# -- a real Prometheus parses every query -------------------------------------------------------------


def http_json(url: str) -> dict:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 400 carries the parse error as JSON
        return json.loads(exc.read())


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    binary = tool("prometheus")
    home = tmp_path_factory.mktemp("prometheus")
    shutil.copy(RULES, home / "alerts.yaml")
    (home / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1m", "evaluation_interval": "1m"},
        "rule_files": [str(home / "alerts.yaml")], "scrape_configs": []}))
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=open(home / "prometheus.log", "w"))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prometheus did not start: {(home / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def grafana_to_promql(expr: str) -> str:
    """What Grafana sends: its interval macros and template variables substituted."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


@pytest.mark.integration
def test_prometheus_parses_every_dashboard_query(prometheus):
    failures = []
    for where, expr in dashboard_queries() + rule_expressions():
        query = urllib.parse.urlencode({"query": grafana_to_promql(expr)})
        answer = http_json(f"{prometheus}/api/v1/query?{query}")
        if answer.get("status") != "success":
            failures.append(f"{where}: {answer.get('error')}")
    assert not failures, "\n".join(failures)


@pytest.mark.integration
def test_prometheus_rejects_a_broken_query(prometheus):
    answer = http_json(f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": "sum by (le (rate(x[5m]))"}))
    assert answer["status"] == "error" and answer["errorType"] == "bad_data"


@pytest.mark.integration
def test_prometheus_loads_the_alert_rules(prometheus):
    groups = http_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    rules = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert set(rules) == {"VideoP2RRewardServiceDown", "VideoP2RJudgeErrorRate", "VideoP2RTrainingStepStalled",
                          "VideoP2RAdvantageCollapse", "VideoP2RRolloutLearnerMismatch"}
    assert set(rules.values()) <= {"ok", "unknown"}
