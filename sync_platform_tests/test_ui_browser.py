"""The Dagster UI as an operator meets it, driven in headless Chromium (issue 18).

One materialized instance serves the module, built as an operator would build it, at small
sizes: a temporary DAGSTER_HOME with the repository's dagster.yaml, a temporary
SYNC_PLATFORM_HOME with its SQLite warehouse, the simulator serving the sources, and
`dagster job execute` of `dealer_sync` (twice, the feed changed in between, so the plots have
two points) and of `ga4_daily` for yesterday's partition (the GA4 reports and the mart built on
them and on the dealer's leads). Then `dagster-webserver` on a free loopback port, and each
test opens one screen. What a screen must show is read from the webserver's own GraphQL API
wherever it follows from the definitions, so a screen that stops showing it fails.

Screenshots (PNG, 1280x800) go to a temporary directory; with
SYNC_PLATFORM_UPDATE_SCREENSHOTS=1 they replace the ones docs/ui.md shows (docs/ui/).

The browser is Debian's chromium (/usr/bin/chromium, `make browser`) driven by Playwright;
Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import httpx
import psutil
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from sync_platform import settings
from sync_platform.config import all_source_configs
from sync_platform.defs.ga4.assets import PARTITION_START_ENV
from sync_platform.orchestration.tags import LAYER_TAG, SOURCE_TAG
from sync_platform.warehouse.connection import create_warehouse_engine
from sync_platform.warehouse.schema import upgrade_warehouse
from sync_platform_simulator.background_server import free_port
from sync_platform_simulator.environment import simulator_environment
from sync_platform_simulator.server import SimulatorServer

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
UPDATE_SCREENSHOTS_ENV = "SYNC_PLATFORM_UPDATE_SCREENSHOTS"
DOCS_SCREENSHOTS = REPO / "docs" / "ui"
VIEWPORT = {"width": 1280, "height": 800}
STOP_SECONDS = 20  # for the webserver to stop its code server and itself, before a kill
START_SECONDS = 180  # for the webserver to answer with the code location loaded

STOCK, LEADS = 40, 20  # the simulated dealer feed, small
FEED_CHANGE = {"change": 5, "add": 3, "remove": 2}  # between the two dealer_sync runs
GA4_HISTORY_DAYS = 3  # GA4 partitions the instance has: yesterday and the two days before
OPERATOR_TAG = {"requested_by": "ops"}  # a tag given on the command line

MART = "mart_daily_kpis"
MART_INPUTS = {"ga4_daily_totals", "ga4_daily_traffic", "dealer_leads"}
SYNCED_ASSET = "dealer_stock"
PARTITIONED_ASSET = "ga4_daily_traffic"
# Automations every deployment has; the test checks all the definitions declare.
KNOWN_AUTOMATIONS = {"ga4_daily_with_lookback", "sync_gap_sensor", "webhook_inbox_sensor"}

# `dagster job execute` runs each step in a process of its own by default (~5-9 s of start-up a
# step on a 2-core machine); in one process the runs, events and checks the UI shows are the
# same, at a third of the wall time.
IN_PROCESS = "execution:\n  config:\n    in_process: {}\n"

expect.set_options(timeout=30_000)  # a loaded 2-core machine answers GraphQL slowly


@dataclass
class Launch:
    job: str
    tags: dict[str, str]


@dataclass
class DagsterUI:
    """The webserver of the materialized instance; what was launched on it."""

    url: str
    partition: str
    launches: list[Launch] = field(default_factory=list)

    def graphql(self, query: str, **variables) -> dict:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables}, timeout=60
        )
        response.raise_for_status()
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]


# --- the instance, the webserver, the browser -------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(
            f"The browser test drives Debian's chromium at {CHROMIUM}, which is not installed: "
            "run `make browser` (it runs `apt-get install -y chromium`).",
            pytrace=False,
        )
    return CHROMIUM


def _execute(job: str, tags: dict[str, str], env: dict[str, str], run_config: Path) -> None:
    """`dagster job execute` as an operator types it (plus the in-process run config)."""
    command = [str(BIN / "dagster"), "job", "execute", "-m", "sync_platform.definitions"]
    command += ["-j", job, "-c", str(run_config), "--tags", json.dumps(tags)]
    completed = subprocess.run(
        command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, (
        f"dagster job execute -j {job} failed:\n{completed.stdout[-3000:]}\n"
        f"{completed.stderr[-3000:]}"
    )


def _start_webserver(env: dict[str, str], port: int, cwd: Path, log: Path) -> subprocess.Popen:
    command = [str(BIN / "dagster-webserver"), "-m", "sync_platform.definitions"]
    with log.open("w") as output:
        return subprocess.Popen(
            [*command, "-h", "127.0.0.1", "-p", str(port)],  # loopback only
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def _stop(process: subprocess.Popen) -> None:
    """Terminate the webserver (it stops its code server); kill, by their ids, what is still
    there after STOP_SECONDS."""
    try:
        started = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)
    _, alive = psutil.wait_procs(started, timeout=STOP_SECONDS)
    for child in alive:
        child.kill()
    psutil.wait_procs(alive, timeout=STOP_SECONDS)


LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _wait_until_serving(ui: DagsterUI, process: subprocess.Popen, log: Path) -> None:
    """Until the webserver answers GraphQL with the code location loaded."""
    deadline = time.monotonic() + START_SECONDS
    while True:
        assert process.poll() is None, f"dagster-webserver exited:\n{log.read_text()[-3000:]}"
        try:
            entries = ui.graphql(LOCATIONS)["workspaceOrError"]["locationEntries"]
        except httpx.TransportError:
            entries = []
        if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
            for entry in entries:
                loaded = entry["locationOrLoadError"]
                assert loaded["__typename"] == "RepositoryLocation", (
                    f"code location {entry['name']} did not load: {loaded.get('message')}"
                )
            return
        assert time.monotonic() < deadline, (
            f"dagster-webserver did not serve the code location in {START_SECONDS}s:\n"
            f"{log.read_text()[-3000:]}"
        )
        time.sleep(0.5)


@pytest.fixture(scope="module")
def ui(chromium, tmp_path_factory) -> Iterator[DagsterUI]:
    root = tmp_path_factory.mktemp("ui")
    dagster_home, platform_home = root / "dagster_home", root / "sync_platform_home"
    dagster_home.mkdir()
    platform_home.mkdir()
    shutil.copy(REPO / "dagster.yaml", dagster_home / "dagster.yaml")
    # Dagster's storage made here, before the webserver and the first run start together: both
    # would otherwise create its SQLite databases at once (and one can fail doing so).
    with dg.DagsterInstance.from_config(str(dagster_home)):
        pass
    run_config = root / "in_process.yaml"
    run_config.write_text(IN_PROCESS)
    warehouse_url = f"sqlite:///{platform_home / 'warehouse.db'}"
    upgrade_warehouse(
        create_warehouse_engine(warehouse_url),
        [entity for source in all_source_configs() for entity in source.entities.values()],
    )
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    history_starts = yesterday - timedelta(days=GA4_HISTORY_DAYS - 1)
    port = free_port()
    ui = DagsterUI(url=f"http://127.0.0.1:{port}", partition=yesterday.isoformat())
    log = root / "webserver.log"
    with (
        SimulatorServer(seed=42) as simulator,
        httpx.Client(base_url=simulator.url, timeout=30) as control,
    ):
        control.post(
            "/_sim/reset", json={"seed": 42, "dealer": {"stock": STOCK, "leads": LEADS}}
        ).raise_for_status()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(dagster_home),
            settings.HOME_ENV: str(platform_home),
            settings.WAREHOUSE_URL_ENV: warehouse_url,
            PARTITION_START_ENV: history_starts.isoformat(),
            **simulator_environment(simulator.url),
        }
        # The webserver loads the code location while the jobs run (two cores, two processes).
        webserver = _start_webserver(env, port, cwd=root, log=log)
        try:
            for launch in (
                Launch("dealer_sync", OPERATOR_TAG),
                Launch("dealer_sync", OPERATOR_TAG),
                Launch("ga4_daily", OPERATOR_TAG | {"dagster/partition": ui.partition}),
            ):
                _execute(launch.job, launch.tags, env, run_config)
                ui.launches.append(launch)
                if len(ui.launches) == 1:
                    control.post("/_sim/dealer/mutate", json=FEED_CHANGE).raise_for_status()
        except BaseException:
            _stop(webserver)
            raise
    try:  # the simulator is stopped: the UI only reads what the runs recorded
        _wait_until_serving(ui, webserver, log)
        # The newsletter dialog a fresh instance shows once on localhost, dismissed as its
        # Skip button does, so it covers no screen.
        assert ui.graphql("mutation { setNuxSeen }")["setNuxSeen"] is True
        yield ui
    finally:
        _stop(webserver)


@pytest.fixture(scope="module")
def browser(chromium) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium))
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser: Browser, ui: DagsterUI) -> Iterator[Page]:
    """One tab for the module, as an operator keeps one: each test opens its screen in it."""
    context = browser.new_context(viewport=VIEWPORT, base_url=ui.url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    if os.environ.get(UPDATE_SCREENSHOTS_ENV) == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path_factory.mktemp("ui_screenshots")


# --- helpers ----------------------------------------------------------------------------------


def visible_text(page: Page, text: str) -> Locator:
    """The visible element showing exactly `text` (the UI keeps hidden copies of labels to
    measure them for truncation)."""
    return page.get_by_text(text, exact=True).filter(visible=True).first


def row_with(page: Page, *texts: str) -> Locator:
    """The innermost element holding all these texts: a row of the UI's lists, which have no
    table roles."""
    found = page.locator("div")
    for text in texts:
        found = found.filter(has=page.get_by_text(text, exact=True))
    return found.last


def labelled(page: Page, label: str) -> Locator:
    """The block of the asset page under a label ("Owners", "Storage", "Row count")."""
    return visible_text(page, label).locator("xpath=..")


def metadata_row(page: Page, label: str) -> Locator:
    return page.get_by_role("row").filter(has=page.get_by_role("cell", name=label, exact=True))


def metadata_value(page: Page, label: str) -> Locator:
    """The value cell of a metadata table's row (the last: a timestamp may sit between)."""
    return metadata_row(page, label).get_by_role("cell").last


def key_of(node: dict) -> str:
    return "/".join(node["assetKey"]["path"])


def tag_of(node: dict, key: str) -> str | None:
    return next((tag["value"] for tag in node["tags"] if tag["key"] == key), None)


# --- the screens ------------------------------------------------------------------------------

ASSET_NODES = """{ assetNodes {
    assetKey { path } groupName isExecutable isPartitioned tags { key value }
    dependencyKeys { path } } }"""

# The asset nodes (SVG foreignObjects) and edges (paths ending in an arrow) the lineage draws,
# in graph coordinates: an edge leaves the right side of its upstream node and ends, at the
# arrow, just left of its downstream node.
DRAWN_GRAPH = """names => {
  const svg = document.querySelector('svg[class*="svgContainer"]');
  const nodes = {};
  for (const box of svg.querySelectorAll(':scope > foreignObject:not(.group)')) {
    const texts = [...box.querySelectorAll('*')]
      .filter(e => e.childElementCount === 0).map(e => e.textContent.trim());
    const name = names.find(n => texts.includes(n));
    if (name) nodes[name] = ['x', 'y', 'width', 'height'].map(a => +box.getAttribute(a));
  }
  const edges = [...svg.querySelectorAll('path[marker-end]')].map(path => {
    const numbers = path.getAttribute('d').match(/-?[0-9.]+/g).map(Number);
    return [numbers[0], numbers[1], numbers[numbers.length - 2], numbers[numbers.length - 1]];
  });
  return {nodes, edges};
}"""


def _drawn(edge: list[float], upstream: list[float], downstream: list[float]) -> bool:
    x1, y1, x2, y2 = edge
    ux, uy, uw, uh = upstream
    dx, dy, _, dh = downstream
    leaves = abs(x1 - (ux + uw)) <= 2 and uy <= y1 <= uy + uh
    arrives = dx - 12 <= x2 <= dx + 2 and dy <= y2 <= dy + dh
    return leaves and arrives


def _upstream_of(nodes: dict[str, dict], roots: list[str]) -> tuple[set[str], set, int]:
    """Every asset upstream of `roots` (with them), the edges among them, and how many levels
    up the farthest of them is (what an `N+` selection needs), from the definitions the
    webserver serves."""
    members, edges, depth = set(roots), set(), 0
    layer = set(roots)
    while layer:
        above = set()
        for name in layer:
            for dep in nodes[name]["dependencyKeys"]:
                upstream = "/".join(dep["path"])
                edges.add((upstream, name))
                above.add(upstream)
        layer = above - members
        members |= above
        depth += bool(layer)
    return members, edges, depth


def test_global_lineage_draws_sources_warehouse_and_marts(ui, page, screenshots):
    nodes = {key_of(node): node for node in ui.graphql(ASSET_NODES)["assetNodes"]}
    marts = sorted(name for name, node in nodes.items() if tag_of(node, LAYER_TAG) == "mart")
    assert MART in marts
    mart_inputs = {"/".join(dep["path"]) for dep in nodes[MART]["dependencyKeys"]}
    assert mart_inputs >= MART_INPUTS, "the mart joins GA4 traffic with the dealer's leads"
    members, edges, depth = _upstream_of(nodes, marts)
    # Whatever feeds a mart is a warehouse asset the platform syncs; what feeds those (if the
    # definitions model them) are the source systems, as external assets.
    for upstream, downstream in edges:
        if downstream in marts:
            assert tag_of(nodes[upstream], LAYER_TAG) == "source", (upstream, downstream)
        elif tag_of(nodes[downstream], LAYER_TAG) == "source":
            assert not nodes[upstream]["isExecutable"], f"{upstream} feeds synced {downstream}"

    # The whole code location: every asset group drawn (collapsed to a box each).
    page.goto("/asset-groups")
    expect(page.get_by_text("Global asset lineage")).to_be_visible()
    graph = page.locator("svg foreignObject")
    for group in sorted({node["groupName"] for node in nodes.values()}):
        expect(graph.get_by_text(group, exact=True).first).to_be_visible()
    expect(graph.get_by_text(re.compile("fetching statuses"))).to_have_count(0)
    page.screenshot(path=screenshots / "lineage.png")

    # Upstream of the marts, groups expanded: every asset and every edge drawn.
    search = page.get_by_role("textbox", name="Search and filter assets")
    search.focus()
    query = " or ".join(f'{depth}+key:"{mart}"' for mart in marts)
    page.keyboard.type(query)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/asset-groups~"))
    page.get_by_role("button", name="settings", exact=True).click()
    page.get_by_role("menuitem", name="Expand all groups").click()
    expect(page).to_have_url(re.compile(r"[?&]expanded="))
    page.reload()  # the layout of the expanded groups, zoomed to fit the width
    # zoomed in far enough that the nodes show their status, not just their names
    for _ in range(3):
        page.get_by_role("button", name="zoom_in", exact=True).click()
    # A node shows its key's last part alone: each must say which asset it is.
    label = {name: name.split("/")[-1] for name in members}
    assert len(set(label.values())) == len(members), f"ambiguous nodes: {sorted(label)}"
    for name in sorted(members):
        expect(graph.get_by_text(label[name], exact=True).first).to_be_visible()
    expect(graph.get_by_text(re.compile("^Loading"))).to_have_count(0)
    for name in sorted(MART_INPUTS | {MART}):  # what the runs materialized, as its node says
        box = graph.filter(has=page.get_by_text(name, exact=True))
        expect(box).to_contain_text("filled" if nodes[name]["isPartitioned"] else "Materialized")
    drawn = page.evaluate(DRAWN_GRAPH, sorted(label.values()))
    by_label = {shown: name for name, shown in label.items()}
    drawn["nodes"] = {by_label[shown]: box for shown, box in drawn["nodes"].items()}
    assert set(drawn["nodes"]) == members
    missing = [
        f"{upstream} -> {downstream}"
        for upstream, downstream in sorted(edges)
        if not any(
            _drawn(edge, drawn["nodes"][upstream], drawn["nodes"][downstream])
            for edge in drawn["edges"]
        )
    ]
    assert not missing, f"edges not drawn: {missing}"
    assert len(drawn["edges"]) == len(edges)
    for _ in range(2):  # the whole chain in the picture, names only
        page.get_by_role("button", name="zoom_out", exact=True).click()
    page.screenshot(path=screenshots / "lineage_marts.png")


SYNCED = """query Synced($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
  ... on AssetNode {
    description
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    metadataEntries { label ... on TextMetadataEntry { text } }
    assetMaterializations(limit: 2) { runId metadataEntries { label __typename
      ... on IntMetadataEntry { intValue } ... on FloatMetadataEntry { floatValue } } }
    assetChecksOrError { ... on AssetChecks { checks {
      name executionForLatestMaterialization { status evaluation { success } } } } }
  } } }"""


def _synced(ui: DagsterUI) -> dict:
    return ui.graphql(SYNCED, path=[SYNCED_ASSET])["assetNodeOrError"]


def _latest(node: dict, label: str):
    entry = next(
        e for e in node["assetMaterializations"][0]["metadataEntries"] if e["label"] == label
    )
    return entry.get("intValue", entry.get("floatValue"))


def test_asset_overview_shows_description_owners_and_table(ui, page, screenshots):
    node = _synced(ui)
    definition = {entry["label"]: entry.get("text") for entry in node["metadataEntries"]}
    owners = [owner.get("team") or owner.get("email") for owner in node["owners"]]
    rows = STOCK + FEED_CHANGE["add"] - FEED_CHANGE["remove"]
    assert node["description"] and owners
    assert definition["dagster/table_name"] == SYNCED_ASSET
    assert _latest(node, "dagster/row_count") == rows

    page.goto(f"/assets/{SYNCED_ASSET}")
    expect(page.get_by_role("tab", name="Overview")).to_be_visible()
    expect(page.get_by_text(node["description"], exact=True)).to_be_visible()
    for owner in owners:
        expect(labelled(page, "Owners")).to_contain_text(owner)
    expect(labelled(page, "Storage")).to_contain_text(definition["dagster/table_name"])
    expect(labelled(page, "Row count")).to_contain_text(str(rows))
    expect(visible_text(page, "primary key (stock_number)")).to_be_visible()
    expect(metadata_row(page, "vin")).to_contain_text("from VIN")
    expect(metadata_value(page, "sync_mode")).to_have_text("full_snapshot")
    expect(metadata_value(page, "updated")).to_have_text(str(FEED_CHANGE["change"]))
    expect(metadata_value(page, "inserted")).to_have_text(str(FEED_CHANGE["add"]))
    page.screenshot(path=screenshots / "asset_overview.png")


def test_checks_tab_lists_every_check_passed(ui, page, screenshots):
    checks = _synced(ui)["assetChecksOrError"]["checks"]
    names = sorted(check["name"] for check in checks)
    assert {"in_step_with_source", "schema_valid"} <= set(names)
    for check in checks:
        execution = check["executionForLatestMaterialization"]
        assert execution["status"] == "SUCCEEDED" and execution["evaluation"]["success"], check

    page.goto(f"/assets/{SYNCED_ASSET}?view=checks")
    expect(page.get_by_text(f"Checks ({len(names)})")).to_be_visible()
    for name in names:
        expect(row_with(page, name, "Succeeded")).to_be_visible()
    row_with(page, "in_step_with_source", "Succeeded").click()
    expect(visible_text(page, "Passed")).to_be_visible()
    rows = STOCK + FEED_CHANGE["add"] - FEED_CHANGE["remove"]
    expect(metadata_value(page, "source_count")).to_have_text(str(rows))
    expect(metadata_value(page, "warehouse_count")).to_have_text(str(rows))
    expect(metadata_value(page, "gap_count")).to_have_text("0")
    page.screenshot(path=screenshots / "asset_checks.png")


PLOTTED = ("rows_per_second", "seconds_total", "dagster/row_count", "updated")


def test_plots_chart_the_sync_figures_over_time(ui, page, screenshots):
    node = _synced(ui)
    assert len(node["assetMaterializations"]) == 2, "two syncs, two points a plot"
    numeric = {
        entry["label"]
        for entry in node["assetMaterializations"][0]["metadataEntries"]
        if entry["__typename"] in ("IntMetadataEntry", "FloatMetadataEntry")
    }
    assert set(PLOTTED) <= numeric

    page.goto(f"/assets/{SYNCED_ASSET}")
    plots = page.get_by_role("button", name="Plots")
    plots.click()
    for label in PLOTTED:
        chart = visible_text(page, label).locator("xpath=../..").locator("canvas")
        expect(chart).to_be_visible()
    page.get_by_text("Metadata", exact=True).evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=screenshots / "asset_plots.png")


PARTITIONS = """query Partitions($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
  ... on AssetNode { partitionStats { numMaterialized numPartitions numFailed numMaterializing }
  } } }"""


def test_partitions_page_shows_the_synced_day(ui, page, screenshots):
    stats = ui.graphql(PARTITIONS, path=[PARTITIONED_ASSET])["assetNodeOrError"]["partitionStats"]
    assert stats["numPartitions"] == GA4_HISTORY_DAYS
    assert stats["numMaterialized"] == 1  # the one day ga4_daily ran for
    missing = stats["numPartitions"] - stats["numMaterialized"] - stats["numFailed"]
    missing -= stats["numMaterializing"]

    page.goto(f"/assets/{PARTITIONED_ASSET}?view=partitions")
    expect(page.get_by_text(f"{stats['numPartitions']} Partitions Selected")).to_be_visible()
    expect(page.get_by_text(f"Materialized ({stats['numMaterialized']})")).to_be_visible()
    expect(page.get_by_text(f"Missing ({missing})")).to_be_visible()
    page.get_by_text(ui.partition, exact=True).filter(visible=True).last.click()
    expect(page).to_have_url(re.compile(f"partition={ui.partition}"))
    expect(visible_text(page, "Materialized")).to_be_visible()
    runs = ui.graphql(RUNS)["runsOrError"]["results"]
    (ga4_run,) = [run for run in runs if run["jobName"] == "ga4_daily"]
    expect(page.get_by_role("link", name=ga4_run["runId"][:8], exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="ga4_daily", exact=True)).to_be_visible()
    expect(metadata_row(page, "fetched")).to_be_visible()
    page.screenshot(path=screenshots / "asset_partitions.png")


RUNS = """{ runsOrError { ... on Runs { results { runId jobName status tags { key value } } } } }"""
# How the runs list spells the tags it shows.
SHOWN_TAG_NAMES = {"dagster/partition": "partition"}


def test_runs_list_shows_the_launched_runs_with_their_tags(ui, page, screenshots):
    runs = ui.graphql(RUNS)["runsOrError"]["results"]
    assert sorted(run["jobName"] for run in runs) == sorted(run.job for run in ui.launches)
    page.goto("/runs")
    for run in runs:
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        launch = next(launch for launch in ui.launches if launch.job == run["jobName"])
        assert run["status"] == "SUCCESS" and tags.items() >= launch.tags.items(), run
        source = tags[SOURCE_TAG]  # the job's own tag: what health and alerts group by
        assert source in ("dealer_feed", "ga4"), run
        row = row_with(page, run["runId"][:8], run["jobName"])
        expect(row).to_contain_text("Success")
        for key, value in [*launch.tags.items(), (SOURCE_TAG, source)]:
            expect(row).to_contain_text(f"{SHOWN_TAG_NAMES.get(key, key)}: {value}")
    page.screenshot(path=screenshots / "runs.png")


AUTOMATIONS = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
    schedules { name } sensors { name } } } } }"""
# What a loaded row says under the name: "Scheduled At 02:00 AM UTC", "Standard sensor", ...
ROW_KIND = {"schedules": re.compile(r"Scheduled "), "sensors": re.compile(r"[A-Z][a-z ]* sensor")}
SCROLL_TO_TOP = """e => {
  for (let box = e.parentElement; box; box = box.parentElement)
    if (box.scrollHeight > box.clientHeight) { box.scrollTop = 0; return; }
}"""


def test_automation_page_lists_schedules_and_sensors(ui, page, screenshots):
    repositories = ui.graphql(AUTOMATIONS)["repositoriesOrError"]["nodes"]
    automations = sorted(
        (item["name"], kind)
        for repository in repositories
        for kind in ROW_KIND
        for item in repository[kind]
    )
    assert {name for name, _ in automations} >= KNOWN_AUTOMATIONS
    page.goto("/automation")
    for name, kind in automations:  # each a row linking to its page, loaded
        row = page.locator(f'a[href$="/{kind}/{name}"]')
        row.scroll_into_view_if_needed()
        expect(row).to_contain_text(name)
        expect(row).to_contain_text(ROW_KIND[kind])
    first = page.locator(f'a[href$="/{automations[0][1]}/{automations[0][0]}"]')
    first.evaluate(SCROLL_TO_TOP)
    expect(first).to_be_in_viewport()
    page.screenshot(path=screenshots / "automation.png")
