// Monitoring files, checked offline and against the real binaries:
//
// - every metric the Grafana dashboard (deploy/grafana/ssehub-dashboard.json)
//   and the Prometheus rules (deploy/prometheus/ssehub-rules.yml) name is
//   served by a real ssehub-node (GET /metrics on its HTTP port) or
//   ssehub-broker (GET /metrics on --metrics-listen), started here against a
//   real redis-server, and both expositions are well-formed Prometheus text
//   (format 0.0.4): # HELP and # TYPE before each family's samples, families
//   grouped, valid label sets and floats, no duplicate series, consistent
//   histograms; rate()/increase() only over counters;
// - prometheus.yml and the rules, structurally, and with promtool (check
//   config, check rules, the rule unit tests ssehub-rules.test.yml, every
//   dashboard query) when promtool is installed (Debian package prometheus);
//   the kubernetes_sd job's relabeling, run here on the rendered pod
//   templates of deploy/k8s;
// - the dashboard's structure (data source input and variable, panel ids,
//   layout, variables) and Grafana's provisioning files;
// - deploy/k8s: the scrape annotations and the broker's metrics port;
//   docker-compose.yml with and without the "monitoring" profile.
//
// Parses YAML with the "yaml" package of package.json, as deploy.test.mjs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

import {
  buildDir, cleanupAll, freePort, sourceDir, startBroker, startNode, startRedis, waitFor,
} from './lib/harness.mjs';
import { kustomize, run, runOk, which } from './lib/commands.mjs';
import { rawSse } from './lib/sse.mjs';

after(cleanupAll);

const src = (...p) => path.join(sourceDir, ...p);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-observability-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const DASHBOARD = 'deploy/grafana/ssehub-dashboard.json';
const PROMETHEUS = 'deploy/prometheus/prometheus.yml';
const RULES = 'deploy/prometheus/ssehub-rules.yml';
const RULE_TESTS = 'deploy/prometheus/ssehub-rules.test.yml';

const promtool = Boolean(which('promtool'));
const NO_PROMTOOL = 'promtool is not installed (Debian: apt-get install prometheus)';

const readYaml = (file) => parseYaml(fs.readFileSync(src(file), 'utf8'));
const dashboard = () => JSON.parse(fs.readFileSync(src(DASHBOARD), 'utf8'));

// ------------------------------------------------------------ PromQL helpers

// The metric names an expression uses: identifiers (colons allowed, as in
// recording rule names) outside string literals, starting with ssehub_.
function metricNames(expr) {
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  return [...bare.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)].map((m) => m[0]).filter((n) => n.startsWith('ssehub_'));
}
// The family a sample or series name belongs to (histogram/summary parts).
const familyOf = (name) => name.replace(/_(bucket|sum|count)$/, '');

// Every panel of the dashboard, rows' nested panels included.
function allPanels(d) {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}
// {where, expr} of every query of the dashboard: panel targets and the
// query variables (label_values(...)).
function dashboardQueries(d) {
  const out = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) if (t.expr) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr, panel: true });
  }
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    out.push({ where: `variable ${v.name}`, expr: q, panel: false });
  }
  return out;
}
// Every rule of the rules file: {group, record | alert, expr, ...}.
function allRules(doc = readYaml(RULES)) {
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ group: g.name, ...r })));
}

// The names referenced by the dashboard and the rules, less those the rules
// record themselves: name -> [where].
function referencedMetrics() {
  const refs = new Map();
  const add = (name, where) => refs.set(name, [...(refs.get(name) ?? []), where]);
  for (const q of dashboardQueries(dashboard())) for (const n of metricNames(q.expr)) add(n, `${DASHBOARD}: ${q.where}`);
  const rules = allRules();
  for (const r of rules) for (const n of metricNames(String(r.expr))) add(n, `${RULES}: ${r.alert ?? r.record}`);
  for (const r of rules) if (r.record) refs.delete(r.record);
  return refs;
}

// The metric names used as the first argument of rate()/increase()/irate(),
// with where: "counter functions" must get counters.
function countersUsed() {
  const used = [];
  const exprs = [
    ...dashboardQueries(dashboard()).map((q) => [q.where, q.expr]),
    ...allRules().map((r) => [r.alert ?? r.record, String(r.expr)]),
  ];
  for (const [where, expr] of exprs) {
    for (const m of expr.matchAll(/\b(?:rate|irate|increase)\s*\(\s*([A-Za-z_:][A-Za-z0-9_:]*)/g)) used.push({ where, name: m[1] });
  }
  return used;
}

// ------------------------------------------------------------ exposition

const NAME = '[A-Za-z_:][A-Za-z0-9_:]*';
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
// A sample value or le as a number (Go's ParseFloat spellings of infinity).
const toFloat = (s) => (/^[+-]?Inf$/.test(s) ? (s.startsWith('-') ? -Infinity : Infinity) : Number(s));

// Parses label pairs `a="x",b="y"` (a trailing comma allowed); throws on
// anything else.
function parseLabels(text, line) {
  const labels = {};
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)/y;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw new Error(`bad label set in: ${line}`);
    if (Object.hasOwn(labels, m[1])) throw new Error(`label ${m[1]} twice in: ${line}`);
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    pos = re.lastIndex;
    if (!m[3]) break;
  }
  if (text.slice(pos).trim()) throw new Error(`bad label set in: ${line}`);
  return labels;
}

// Parses and checks a text exposition (format 0.0.4); returns
// Map family -> {type, help, samples: [{name, labels, value}]}. Throws
// (assert) with the offending line on any fault.
function parseExposition(text, what) {
  assert.ok(text.length > 0, `${what}: empty exposition`);
  assert.ok(text.endsWith('\n'), `${what}: the last line ends with a newline`);
  const families = new Map();
  const closed = new Set(); // families whose group has ended
  const series = new Set();
  let current = null;
  const enter = (fam, line) => {
    if (fam === current) return;
    assert.ok(!closed.has(fam), `${what}: the lines of ${fam} are not one group: ${line}`);
    if (current) closed.add(current);
    current = fam;
  };
  const family = (name) => {
    if (!families.has(name)) families.set(name, { type: null, help: null, samples: [] });
    return families.get(name);
  };
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.trim() === '') continue;
    const meta = line.match(new RegExp(`^#\\s+(HELP|TYPE)\\s+(${NAME})(?:\\s+(.*))?$`));
    if (meta) {
      const [, kind, name, rest = ''] = meta;
      enter(name, line);
      const f = family(name);
      assert.equal(f.samples.length, 0, `${what}: # ${kind} ${name} after its samples`);
      if (kind === 'HELP') {
        assert.equal(f.help, null, `${what}: two # HELP lines for ${name}`);
        assert.ok(!/\\[^\\n]/.test(rest), `${what}: bad escape in # HELP ${name}`);
        f.help = rest;
      } else {
        assert.equal(f.type, null, `${what}: two # TYPE lines for ${name}`);
        assert.ok(TYPES.has(rest.trim()), `${what}: unknown type in: ${line}`);
        f.type = rest.trim();
      }
      continue;
    }
    if (line.startsWith('#')) continue; // any other comment
    const m = line.match(new RegExp(`^(${NAME})(?:\\{(.*)\\})?[ \\t]+(\\S+)(?:[ \\t]+(-?\\d+))?$`));
    assert.ok(m, `${what}: not "name{labels} value [timestamp]": ${JSON.stringify(line)}`);
    const [, name, labelText = '', value] = m;
    assert.match(value, FLOAT, `${what}: ${name}: value ${JSON.stringify(value)} is not a float`);
    let labels;
    assert.doesNotThrow(() => { labels = parseLabels(labelText, line); }, `${what}: labels of ${line}`);
    for (const k of Object.keys(labels)) assert.ok(!k.startsWith('__'), `${what}: reserved label name ${k}: ${line}`);
    // The family: the name itself, or the histogram/summary it is part of.
    const base = familyOf(name);
    const fam = families.get(name)?.type ? name
      : (['histogram', 'summary'].includes(families.get(base)?.type) ? base : name);
    enter(fam, line);
    const f = families.get(fam);
    assert.ok(f?.type, `${what}: sample ${name} without a # TYPE line before it`);
    assert.ok(f.help !== null, `${what}: sample ${name} without a # HELP line before it`);
    if (fam !== name) {
      const part = name.slice(fam.length);
      assert.ok(part !== '_bucket' || f.type === 'histogram', `${what}: ${name}: _bucket of a ${f.type}`);
    } else {
      assert.notEqual(f.type, 'histogram', `${what}: bare sample ${name} of a histogram`);
    }
    const key = `${name}{${Object.keys(labels).sort().map((k) => `${k}=${JSON.stringify(labels[k])}`).join(',')}}`;
    assert.ok(!series.has(key), `${what}: duplicate series ${key}`);
    series.add(key);
    f.samples.push({ name, labels, value: toFloat(value) });
  }
  for (const [name, f] of families) {
    assert.ok(f.type, `${what}: ${name} has # HELP but no # TYPE`);
    assert.ok(f.help !== null, `${what}: ${name} has # TYPE but no # HELP`);
    if (f.type === 'counter') {
      assert.match(name, /_total$/, `${what}: counter ${name} is named *_total`);
      for (const s of f.samples) assert.ok(s.value >= 0, `${what}: counter ${name} is negative`);
    }
    if (f.type === 'histogram') checkHistogram(name, f, what);
  }
  return families;
}

// Each histogram series (labels less le): buckets cumulative, a +Inf bucket
// equal to _count, and a _sum.
function checkHistogram(name, f, what) {
  const groups = new Map();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const k = JSON.stringify(Object.entries(rest).sort());
    if (!groups.has(k)) groups.set(k, { buckets: [], sum: null, count: null });
    const g = groups.get(k);
    if (s.name.endsWith('_bucket')) {
      assert.ok(le !== undefined, `${what}: ${s.name} without le`);
      assert.match(le, FLOAT, `${what}: ${s.name}: le="${le}"`);
      g.buckets.push([toFloat(le), s.value]);
    } else if (s.name.endsWith('_sum')) g.sum = s.value;
    else g.count = s.value;
  }
  assert.ok(groups.size > 0, `${what}: histogram ${name} has no samples`);
  for (const g of groups.values()) {
    g.buckets.sort((a, b) => a[0] - b[0]);
    assert.ok(g.buckets.length >= 2, `${what}: ${name} has buckets`);
    for (let i = 1; i < g.buckets.length; i++) {
      assert.ok(g.buckets[i][1] >= g.buckets[i - 1][1], `${what}: ${name} buckets are cumulative`);
    }
    const inf = g.buckets.at(-1);
    assert.equal(inf[0], Infinity, `${what}: ${name} has a le="+Inf" bucket`);
    assert.ok(g.sum !== null && g.count !== null, `${what}: ${name}_sum and ${name}_count`);
    assert.equal(inf[1], g.count, `${what}: ${name}: the +Inf bucket equals _count`);
  }
}

// GET url -> {status, type, text}.
async function get(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

// GET /metrics, checked and parsed.
async function scrape(url, what) {
  const r = await get(url);
  assert.equal(r.status, 200, `${what}: GET ${url} -> ${r.status}: ${r.text.slice(0, 200)}`);
  assert.match(r.type, /^text\/plain\b/, `${what}: Content-Type ${r.type}`);
  const version = r.type.match(/version=([^;\s]+)/)?.[1];
  assert.ok(!version || version === '0.0.4', `${what}: Content-Type ${r.type} names text format 0.0.4`);
  return parseExposition(r.text, what);
}
const value = (fams, name, labels = {}) => fams.get(name)?.samples
  .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  .reduce((a, s) => a + s.value, 0);

test('the exposition checks catch malformed output', () => {
  const good = '# HELP a_total A.\n# TYPE a_total counter\na_total 1\n'
    + '# HELP h H.\n# TYPE h histogram\nh_bucket{le="0.1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.3\nh_count 2\n';
  const fams = parseExposition(good, 'good');
  assert.deepEqual([...fams.keys()], ['a_total', 'h']);
  const bad = {
    'no TYPE': '# HELP a_total A.\na_total 1\n',
    'no HELP': '# TYPE a_total counter\na_total 1\n',
    'TYPE after samples': '# HELP g G.\ng 1\n# TYPE g gauge\n',
    'not a float': '# HELP g G.\n# TYPE g gauge\ng one\n',
    'bad labels': '# HELP g G.\n# TYPE g gauge\ng{a=1} 1\n',
    'duplicate series': '# HELP g G.\n# TYPE g gauge\ng{a="1",b="2"} 1\ng{b="2",a="1"} 2\n',
    'split family': '# HELP g G.\n# TYPE g gauge\ng{a="1"} 1\n# HELP f F.\n# TYPE f gauge\nf 1\ng{a="2"} 1\n',
    'no final newline': '# HELP g G.\n# TYPE g gauge\ng 1',
    '+Inf != count': '# HELP h H.\n# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_bucket{le="1"} 1\nh_sum 1\nh_count 3\n',
    'counter not *_total': '# HELP c C.\n# TYPE c counter\nc 1\n',
  };
  for (const [what, text] of Object.entries(bad)) assert.throws(() => parseExposition(text, what), `${what} is refused`);
  assert.deepEqual(metricNames('sum by (le) (rate(ssehub_a_bucket{x="ssehub_no"}[$__rate_interval])) / instance:ssehub_rec:sum'),
    ['ssehub_a_bucket']);
});

// ------------------------------------------------------------ (a) live binaries

describe('the metrics the dashboard and the alerts use exist', () => {
  let nodeFams, brokerFams;

  before(async () => {
    const redis = await startRedis();
    const metricsPort = await freePort();
    await startBroker(redis, { args: ['--metrics-listen', `127.0.0.1:${metricsPort}`] });
    const node = await startNode(redis);
    const brokerUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    // Some traffic, so the counters and the labelled series have moved: a
    // stream open on the node and one event through the broker to it.
    const stream = await rawSse(`${node.url}/events?topic=observability`, { timeout: 20000 });
    assert.equal(stream.status, 200);
    await waitFor(async () => {
      await redis.cmd('PUBLISH', 'sse:observability', 'hello');
      return stream.events.length > 0;
    }, { timeout: 10000, interval: 200, what: 'an event published through the broker on the stream' });
    // A first scrape each, failing with what is wrong; then, the values
    // being sampled at the scrape (some once a second), until they show the
    // event and the Redis links (the last scrape is checked below).
    const scrapeUntil = async (url, what, settled) => {
      let fams = await scrape(url, what);
      const end = Date.now() + 5000;
      while (!settled(fams) && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 100));
        fams = await scrape(url, what);
      }
      return fams;
    };
    nodeFams = await scrapeUntil(`${node.url}/metrics`, 'ssehub-node /metrics',
      (f) => value(f, 'ssehub_node_events_out_total') >= 1 && value(f, 'ssehub_node_redis_up') === 1);
    brokerFams = await scrapeUntil(brokerUrl, 'ssehub-broker /metrics',
      (f) => value(f, 'ssehub_broker_ingested_total') >= 1 && value(f, 'ssehub_broker_redis_up') === 1
        && value(f, 'ssehub_broker_lease_held') === 1);
    stream.close();
  });

  test('every ssehub_* metric of the dashboard and the rules is served (histograms as _bucket/_sum/_count)', () => {
    const refs = referencedMetrics();
    assert.ok(refs.size >= 20, `found the references (${refs.size})`);
    const served = new Map([...nodeFams, ...brokerFams]);
    const missing = [];
    for (const [name, where] of refs) {
      const fam = served.has(name) ? name : familyOf(name);
      const f = served.get(fam);
      if (!f) { missing.push(`${name} (${where[0]}${where.length > 1 ? ` and ${where.length - 1} more` : ''})`); continue; }
      if (fam !== name) assert.equal(f.type, 'histogram', `${name}: ${fam} is a histogram`);
    }
    assert.deepEqual(missing, [], 'metrics referenced but served by neither binary');
  });

  test('rate() and increase() are only applied to counters (or histogram buckets)', () => {
    const served = new Map([...nodeFams, ...brokerFams]);
    for (const { where, name } of countersUsed()) {
      if (!name.startsWith('ssehub_')) continue;
      const f = served.get(name) ?? served.get(familyOf(name));
      assert.ok(f, `${where}: ${name} is served`);
      assert.ok(f.type === 'counter' || (f.type === 'histogram' && name !== familyOf(name)),
        `${where}: rate/increase over ${name}, a ${f.type}`);
    }
  });

  test('the node and broker families are theirs, and the values follow the traffic', () => {
    for (const n of nodeFams.keys()) assert.match(n, /^ssehub_node_/, `node family ${n}`);
    for (const n of brokerFams.keys()) assert.match(n, /^ssehub_broker_/, `broker family ${n}`);
    assert.equal(value(nodeFams, 'ssehub_node_redis_up'), 1, 'the node\'s Redis link is up');
    assert.equal(value(nodeFams, 'ssehub_node_draining'), 0);
    assert.equal(value(nodeFams, 'ssehub_node_connections', { protocol: 'http1' }), 1, 'the open stream, on HTTP/1.1');
    assert.ok(value(nodeFams, 'ssehub_node_events_in_total') >= 1, 'events in from Redis');
    assert.ok(value(nodeFams, 'ssehub_node_events_out_total') >= 1, 'events out to the stream');
    assert.equal(value(brokerFams, 'ssehub_broker_redis_up'), 1, 'the broker\'s Redis link is up');
    assert.equal(value(brokerFams, 'ssehub_broker_lease_held'), 1, 'the only broker holds the lease');
  });

  test('the dashboard shows every family the binaries serve', () => {
    const shown = new Set(metricNames(dashboardQueries(dashboard()).map((q) => q.expr).join('\n')).map(familyOf));
    const unshown = [...nodeFams.keys(), ...brokerFams.keys()].filter((n) => !shown.has(n));
    assert.deepEqual(unshown, [], 'families no panel or variable of the dashboard uses');
  });
});

// ------------------------------------------------------------ (b) Prometheus

// Prometheus relabeling (RE2 anchored regexes, $1 / ${1} replacements) of
// one target's labels; null when the target is dropped.
function relabel(labels, configs) {
  const out = { ...labels };
  for (const c of configs) {
    const action = c.action ?? 'replace';
    const re = new RegExp(`^(?:${c.regex ?? '(.*)'})$`);
    const val = (c.source_labels ?? []).map((l) => out[l] ?? '').join(c.separator ?? ';');
    const m = val.match(re);
    if (action === 'keep' && !m) return null;
    if (action === 'drop' && m) return null;
    if (action === 'replace' && m) {
      const res = (c.replacement ?? '$1').replace(/\$(?:\{(\w+)\}|(\d+))/g, (_, a, b) => m[Number(a ?? b)] ?? '');
      if (res === '') delete out[c.target_label];
      else out[c.target_label] = res;
    }
    assert.ok(['keep', 'drop', 'replace'].includes(action), `relabel action ${action} is simulated here`);
  }
  return out;
}

// The labels kubernetes_sd (role pod) gives a pod template's container port.
function podTargetLabels(template, container, port, ip) {
  const sane = (k) => k.replace(/[^A-Za-z0-9_]/g, '_');
  const l = {
    __address__: `${ip.includes(':') ? `[${ip}]` : ip}:${port.containerPort}`,
    __meta_kubernetes_namespace: 'default',
    __meta_kubernetes_pod_name: `${template.metadata.labels['app.kubernetes.io/component']}-abc12`,
    __meta_kubernetes_pod_ip: ip,
    __meta_kubernetes_pod_phase: 'Running',
    __meta_kubernetes_pod_node_name: 'worker-1',
    __meta_kubernetes_pod_container_name: container.name,
    __meta_kubernetes_pod_container_port_name: port.name ?? '',
    __meta_kubernetes_pod_container_port_number: String(port.containerPort),
  };
  for (const [k, v] of Object.entries(template.metadata.labels ?? {})) l[`__meta_kubernetes_pod_label_${sane(k)}`] = v;
  for (const [k, v] of Object.entries(template.metadata.annotations ?? {})) l[`__meta_kubernetes_pod_annotation_${sane(k)}`] = v;
  return l;
}

const deployment = (objs, name) => objs.find((o) => o.kind === 'Deployment' && o.metadata.name === name);

describe('prometheus.yml and the rules', () => {
  test('prometheus.yml: jobs ssehub-node, ssehub-broker and the Kubernetes pod job; the rule files exist', () => {
    const cfg = readYaml(PROMETHEUS);
    assert.ok(cfg.global?.scrape_interval && cfg.global?.evaluation_interval, 'global intervals');
    assert.ok(cfg.rule_files.includes('ssehub-rules.yml'));
    for (const f of cfg.rule_files) assert.ok(fs.existsSync(path.join(path.dirname(src(PROMETHEUS)), f)), `rule file ${f} exists`);
    const jobs = cfg.scrape_configs.map((j) => j.job_name);
    assert.equal(new Set(jobs).size, jobs.length, `job names unique: ${jobs}`);
    const byName = Object.fromEntries(cfg.scrape_configs.map((j) => [j.job_name, j]));
    for (const job of ['ssehub-node', 'ssehub-broker']) {
      assert.ok(byName[job]?.static_configs?.[0]?.targets?.length, `${job} has static targets`);
      assert.equal(byName[job].metrics_path ?? '/metrics', '/metrics');
    }
    const k8s = cfg.scrape_configs.filter((j) => j.kubernetes_sd_configs);
    assert.equal(k8s.length, 1, 'one kubernetes_sd job');
    assert.deepEqual(k8s[0].kubernetes_sd_configs.map((s) => s.role), ['pod']);
    const keep = k8s[0].relabel_configs.find((r) => r.action === 'keep'
      && r.source_labels?.includes('__meta_kubernetes_pod_annotation_prometheus_io_scrape'));
    assert.equal(keep?.regex, 'true', 'keeps pods annotated prometheus.io/scrape=true');
    assert.ok(k8s[0].relabel_configs.some((r) => r.target_label === '__address__'
      && r.source_labels?.includes('__meta_kubernetes_pod_annotation_prometheus_io_port')), 'port from prometheus.io/port');
  });

  test('the Kubernetes pod job turns the rendered node and broker pods into ssehub-node / ssehub-broker targets', () => {
    const job = readYaml(PROMETHEUS).scrape_configs.find((j) => j.kubernetes_sd_configs);
    const objs = kustomize('deploy/k8s/base');
    for (const [name, jobName, port] of [['ssehub-node', 'ssehub-node', '8080'], ['ssehub-broker', 'ssehub-broker', '9100']]) {
      const tpl = deployment(objs, name).spec.template;
      const c = tpl.spec.containers[0];
      for (const ip of ['10.1.2.3', 'fd00:10::7']) {
        const targets = new Map();
        for (const p of c.ports) {
          const t = relabel(podTargetLabels(tpl, c, p, ip), job.relabel_configs);
          assert.ok(t, `${name} (${p.name}) is kept`);
          targets.set(t.__address__, t);
        }
        assert.equal(targets.size, 1, `${name}: one address`);
        const [t] = targets.values();
        assert.equal(t.__address__, ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`, `${name} scraped on its metrics port`);
        assert.equal(t.job, jobName);
        assert.equal(t.__metrics_path__, '/metrics');
        assert.equal(t.instance, `${tpl.metadata.labels['app.kubernetes.io/component']}-abc12`, 'instance is the pod name');
        assert.equal(t.namespace, 'default');
      }
      // Without the annotation, or another app's pod, or not running: dropped.
      const p = c.ports[0];
      const plain = structuredClone(tpl);
      delete plain.metadata.annotations['prometheus.io/scrape'];
      assert.equal(relabel(podTargetLabels(plain, c, p, '10.1.2.3'), job.relabel_configs), null, 'unannotated pods are not scraped');
      const other = structuredClone(tpl);
      other.metadata.labels['app.kubernetes.io/name'] = 'other';
      assert.equal(relabel(podTargetLabels(other, c, p, '10.1.2.3'), job.relabel_configs), null, 'other apps are not scraped');
      const done = { ...podTargetLabels(tpl, c, p, '10.1.2.3'), __meta_kubernetes_pod_phase: 'Succeeded' };
      assert.equal(relabel(done, job.relabel_configs), null, 'finished pods are not scraped');
    }
  });

  test('ssehub-rules.yml: groups, unique alert names, severities, summaries, the alerts ssehub needs', () => {
    const doc = readYaml(RULES);
    const groups = doc.groups.map((g) => g.name);
    assert.equal(new Set(groups).size, groups.length, 'group names unique');
    const rules = allRules(doc);
    const alerts = rules.filter((r) => r.alert);
    const names = alerts.map((r) => r.alert);
    assert.equal(new Set(names).size, names.length, `alert names unique: ${names}`);
    for (const r of rules) {
      assert.ok(!!r.alert !== !!r.record, `${r.alert ?? r.record}: alert or record`);
      assert.ok(typeof r.expr === 'string' && r.expr.trim(), `${r.alert ?? r.record}: expr`);
      let depth = 0;
      for (const ch of r.expr.replace(/"(?:[^"\\]|\\.)*"/g, '""')) {
        depth += '({['.includes(ch) ? 1 : ')}]'.includes(ch) ? -1 : 0;
        assert.ok(depth >= 0, `${r.alert ?? r.record}: brackets balance`);
      }
      assert.equal(depth, 0, `${r.alert ?? r.record}: brackets balance`);
      if (r.record) assert.match(r.record, /^[A-Za-z_:][A-Za-z0-9_:]*$/, 'record name');
      if (r.for !== undefined) assert.match(r.for, /^(\d+(ms|s|m|h|d|w|y))+$/, `${r.alert}: for`);
    }
    for (const a of alerts) {
      assert.match(a.alert, /^Ssehub[A-Z]\w+$/, `${a.alert}: named Ssehub*`);
      assert.ok(['critical', 'warning', 'info'].includes(a.labels?.severity), `${a.alert}: severity`);
      assert.ok(a.annotations?.summary, `${a.alert}: summary`);
    }
    const alert = (name) => alerts.find((a) => a.alert === name) ?? assert.fail(`alert ${name}`);
    const redis = alert('SsehubNodeRedisDown');
    assert.match(redis.expr, /ssehub_node_redis_up\s*==\s*0/);
    assert.equal(redis.for, '1m');
    const leader = alert('SsehubBrokerLeaderMissing');
    assert.match(leader.expr, /sum\(ssehub_broker_lease_held\)\s*==\s*0/);
    assert.equal(leader.for, '30s');
    assert.match(alert('SsehubBrokerDropping').expr, /increase\(ssehub_broker_dropped_total\[5m\]\)\s*>\s*0/);
    assert.match(alert('SsehubSlowConsumerDropsSpike').expr, /ssehub_node_slow_consumer_drops_total/);
    assert.match(alert('SsehubRedisLatencyHigh').expr, /histogram_quantile\(0\.99,.*ssehub_node_redis_command_seconds_bucket/);
  });

  test('promtool check config', { skip: !promtool && NO_PROMTOOL }, (t) => {
    const r = run('promtool', ['check', 'config', PROMETHEUS]);
    if (r.status === 0) return;
    // Debian's Prometheus is built without Kubernetes discovery: check the
    // rest (the pod job is checked by the relabeling test above).
    assert.match(r.stdout + r.stderr, /field kubernetes_sd_configs not found/,
      `promtool check config failed:\n${r.stdout}\n${r.stderr}`);
    t.diagnostic('this promtool has no Kubernetes discovery: checking the config without the pod job');
    const cfg = readYaml(PROMETHEUS);
    cfg.scrape_configs = cfg.scrape_configs.filter((j) => !j.kubernetes_sd_configs);
    cfg.rule_files = cfg.rule_files.map((f) => path.join(path.dirname(src(PROMETHEUS)), f));
    const file = path.join(tmp, 'prometheus-no-k8s.yml');
    fs.writeFileSync(file, stringifyYaml(cfg));
    runOk('promtool', ['check', 'config', file]);
  });

  test('promtool check rules and the rule unit tests', { skip: !promtool && NO_PROMTOOL }, () => {
    runOk('promtool', ['check', 'rules', RULES]);
    const out = runOk('promtool', ['test', 'rules', RULE_TESTS]);
    assert.match(out, /SUCCESS/);
  });

  test('promtool parses every query of the dashboard', { skip: !promtool && NO_PROMTOOL }, () => {
    // Grafana's variables replaced the way Grafana would expand them.
    const vars = { __rate_interval: '1m', __interval: '15s', __range: '1h', node: '.*', broker: '.*' };
    const queries = dashboardQueries(dashboard()).filter((q) => q.panel);
    const rules = queries.map((q, i) => ({
      record: `dashboard:query:${i}`,
      expr: q.expr.replace(/\$\{?(\w+)\}?/g, (m, v) => vars[v] ?? assert.fail(`${q.where}: unknown variable ${m}`)),
    }));
    const file = path.join(tmp, 'dashboard-queries.yml');
    fs.writeFileSync(file, stringifyYaml({ groups: [{ name: 'dashboard', rules }] }));
    const r = run('promtool', ['check', 'rules', file]);
    assert.equal(r.status, 0, `a dashboard query does not parse:\n${r.stdout}\n${r.stderr}`);
  });
});

// ------------------------------------------------------------ Grafana

describe('the Grafana dashboard and provisioning', () => {
  test('dashboard: schema, the DS_PROMETHEUS input and variable, unique ids, a layout without overlaps', () => {
    const d = dashboard();
    assert.ok(d.schemaVersion >= 36, `schemaVersion ${d.schemaVersion}`);
    assert.ok(d.uid && d.title);
    assert.deepEqual(d.__inputs?.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']]);
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get('DS_PROMETHEUS')?.type, 'datasource');
    assert.equal(vars.get('DS_PROMETHEUS')?.query, 'prometheus');
    const panels = allPanels(d);
    const ids = panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids unique');
    const boxes = [];
    for (const p of panels) {
      const g = p.gridPos;
      assert.ok(g && g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0 && g.y >= 0, `${p.title}: gridPos ${JSON.stringify(g)}`);
      for (const b of boxes) {
        const overlap = g.x < b.x + b.w && b.x < g.x + g.w && g.y < b.y + b.h && b.y < g.y + g.h;
        assert.ok(!overlap, `"${p.title}" overlaps "${b.title}"`);
      }
      boxes.push({ ...g, title: p.title });
      if (p.type === 'row') continue;
      assert.ok(p.title, `panel ${p.id} has a title`);
      assert.deepEqual(p.datasource, { type: 'prometheus', uid: '${DS_PROMETHEUS}' }, `${p.title}: data source`);
      assert.ok(p.targets?.length, `${p.title}: queries`);
      const refIds = p.targets.map((t) => t.refId);
      assert.equal(new Set(refIds).size, refIds.length, `${p.title}: refIds unique`);
      for (const t of p.targets) {
        assert.ok(t.expr?.trim(), `${p.title} ${t.refId}: expr`);
        assert.equal(t.datasource?.uid ?? '${DS_PROMETHEUS}', '${DS_PROMETHEUS}', `${p.title} ${t.refId}: data source`);
      }
    }
    // Every $variable a query uses is defined (or one of Grafana's own).
    for (const q of dashboardQueries(d)) {
      for (const [, v] of q.expr.matchAll(/\$\{?(\w+)\}?/g)) {
        assert.ok(vars.has(v) || ['__rate_interval', '__interval', '__range'].includes(v), `${q.where}: $${v} is defined`);
      }
    }
    for (const v of d.templating.list.filter((x) => x.type === 'query')) assert.equal(v.datasource?.uid, '${DS_PROMETHEUS}');
  });

  test('dashboard: the panels ssehub operators need', () => {
    const d = dashboard();
    const byExpr = (re) => allPanels(d).filter((p) => p.targets?.some((t) => re.test(t.expr)));
    const need = {
      'connections by protocol': /sum by \(protocol\) \(ssehub_node_connections/,
      'connections by node': /sum by \(instance\) \(ssehub_node_connections/,
      subscriptions: /ssehub_node_subscriptions/,
      topics: /ssehub_node_topics/,
      'pattern streams': /ssehub_node_pattern_streams/,
      'events in': /rate\(ssehub_node_events_in_total/,
      'events out': /rate\(ssehub_node_events_out_total/,
      'bytes out': /rate\(ssehub_node_bytes_out_total/,
      'replays by source': /sum by \(source\) \(rate\(ssehub_node_replays_total/,
      'slow consumer drops': /ssehub_node_slow_consumer_drops_total/,
      'redis up': /ssehub_node_redis_up/,
      'redis reconnects': /ssehub_node_redis_reconnects_total/,
      'redis p50': /histogram_quantile\(0\.5, .*ssehub_node_redis_command_seconds_bucket/,
      'redis p99': /histogram_quantile\(0\.99, .*ssehub_node_redis_command_seconds_bucket/,
      draining: /ssehub_node_draining/,
      'http2 cuts': /ssehub_node_http2_cuts_total/,
      'publishes by result': /sum by \(result\) \(rate\(ssehub_node_publishes_total/,
      'refused by reason': /sum by \(reason\) \(rate\(ssehub_node_refused_total/,
      'broker ingested': /rate\(ssehub_broker_ingested_total/,
      'broker errors': /ssehub_broker_publish_errors_total/,
      'broker dropped': /ssehub_broker_dropped_total/,
      'broker duplicates': /ssehub_broker_duplicates_total/,
      'broker fenced': /ssehub_broker_fenced_total/,
      'broker queue messages': /ssehub_broker_queued_messages/,
      'broker queue bytes': /ssehub_broker_queued_bytes/,
      'lease holder': /ssehub_broker_lease_held/,
    };
    for (const [what, re] of Object.entries(need)) assert.ok(byExpr(re).length, `a panel shows ${what} (${re})`);
  });

  test('provisioning: the data source is the compose Prometheus; the provider loads the mounted dashboard folder', () => {
    const ds = readYaml('deploy/grafana/provisioning/datasources/prometheus.yml');
    assert.equal(ds.apiVersion, 1);
    const prom = ds.datasources.filter((d) => d.type === 'prometheus');
    assert.equal(prom.length, 1);
    assert.equal(prom[0].isDefault, true, 'the default data source (what DS_PROMETHEUS picks)');
    assert.equal(prom[0].url, 'http://prometheus:9090');
    const dash = readYaml('deploy/grafana/provisioning/dashboards/ssehub.yml');
    assert.equal(dash.apiVersion, 1);
    assert.equal(dash.providers.length, 1);
    assert.equal(dash.providers[0].type, 'file');
    assert.ok(dash.providers[0].options.path.startsWith('/'), 'an absolute path in the container');
  });
});

// ------------------------------------------------------------ (c) deployment files

describe('deployment files', () => {
  const brokerHelp = () => runOk(path.join(buildDir, 'ssehub-broker'), ['--help']);

  for (const dir of ['deploy/k8s/base', 'deploy/k8s/overlays/example']) {
    test(`${dir}: kubectl kustomize renders; node and broker pods carry the scrape annotations of a container port`, () => {
      const objs = kustomize(dir);
      for (const [name, portName] of [['ssehub-node', 'http'], ['ssehub-broker', 'metrics']]) {
        const tpl = deployment(objs, name)?.spec.template ?? assert.fail(`Deployment ${name}`);
        const a = tpl.metadata.annotations ?? {};
        assert.equal(a['prometheus.io/scrape'], 'true', `${name}: prometheus.io/scrape`);
        assert.equal(a['prometheus.io/path'], '/metrics', `${name}: prometheus.io/path`);
        const c = tpl.spec.containers[0];
        const port = c.ports?.find((p) => p.name === portName);
        assert.ok(port, `${name}: container port ${portName}`);
        assert.equal(a['prometheus.io/port'], String(port.containerPort), `${name}: prometheus.io/port is port ${portName}`);
      }
      const broker = deployment(objs, 'ssehub-broker').spec.template.spec.containers[0];
      const listen = broker.env.find((e) => e.name === 'SSEHUB_METRICS_LISTEN')?.value;
      assert.equal(listen, `0.0.0.0:${broker.ports.find((p) => p.name === 'metrics').containerPort}`,
        'the broker listens for metrics on its metrics port, all interfaces');
      const config = objs.find((o) => o.kind === 'ConfigMap');
      assert.ok(!('SSEHUB_METRICS_LISTEN' in config.data), 'not in the ConfigMap the nodes read too');
    });
  }

  test('the broker knows SSEHUB_METRICS_LISTEN', () => {
    assert.match(brokerHelp(), /--metrics-listen\b.*SSEHUB_METRICS_LISTEN/);
  });

  const composeConfig = (profile) => {
    const args = ['-f', 'docker-compose.yml', ...(profile ? ['--profile', profile] : []), 'config'];
    runOk('docker-compose', [...args, '-q']);
    return parseYaml(runOk('docker-compose', args));
  };
  const mounts = (svc) => (svc.volumes ?? []).map((v) => (typeof v === 'string'
    ? { source: v.split(':')[0], target: v.split(':')[1] } : { source: v.source, target: v.target }));
  const portOf = (hostPort) => hostPort.split(':').at(-1);

  test('docker-compose config -q passes with and without the monitoring profile', () => {
    assert.ok(which('docker-compose'), 'docker-compose is installed');
    composeConfig(null);
    const c = composeConfig('monitoring');
    for (const name of ['prometheus', 'grafana']) {
      const s = c.services[name];
      assert.ok(s, `service ${name}`);
      assert.deepEqual(s.profiles, ['monitoring'], `${name} only with --profile monitoring`);
      assert.match(s.image, /^[\w./-]+:v?\d+\.\d+\.\d+$/, `${name}: a pinned image tag`);
      assert.ok(s.ports.every((p) => (p.host_ip ?? String(p).split(':')[0]) === '127.0.0.1'), `${name}: published on loopback`);
    }
    // The other services take no profile: plain `up` starts what it did.
    for (const [name, s] of Object.entries(c.services)) {
      if (!['prometheus', 'grafana'].includes(name)) assert.ok(!s.profiles, `${name} has no profile`);
    }
  });

  test('docker-compose: Prometheus scrapes every node and broker service on its metrics port, Grafana gets the files', () => {
    const c = composeConfig('monitoring');
    const svc = c.services;
    const byCmd = (bin) => Object.keys(svc).filter((n) => (svc[n].command ?? [])[0] === bin).sort();
    const nodes = byCmd('ssehub-node');
    const brokers = byCmd('ssehub-broker');
    assert.equal(nodes.length, 3);
    assert.equal(brokers.length, 2);
    // Prometheus: the config directory mounted where --config.file points.
    const prom = svc.prometheus;
    const cfgArg = prom.command.find((a) => a.startsWith('--config.file=')).split('=')[1];
    const cfgMount = mounts(prom).find((m) => cfgArg.startsWith(`${m.target}/`));
    assert.ok(cfgMount, `${cfgArg} is in a mounted directory`);
    assert.equal(path.resolve(sourceDir, cfgMount.source), src('deploy/prometheus'));
    const cfg = readYaml(PROMETHEUS);
    const targets = (job) => cfg.scrape_configs.find((j) => j.job_name === job).static_configs.flatMap((s) => s.targets).sort();
    assert.deepEqual(targets('ssehub-node'), nodes.map((n) => `${n}:${portOf(svc[n].environment.SSEHUB_LISTEN)}`));
    const brokerTargets = brokers.map((b) => {
      const listen = svc[b].environment.SSEHUB_METRICS_LISTEN;
      assert.match(listen ?? '', /^0\.0\.0\.0:\d+$/, `${b}: SSEHUB_METRICS_LISTEN on all interfaces`);
      assert.ok((svc[b].expose ?? []).map(String).includes(portOf(listen)), `${b} exposes its metrics port`);
      return `${b}:${portOf(listen)}`;
    });
    assert.deepEqual(targets('ssehub-broker'), brokerTargets);
    // Grafana: provisioning and the dashboard where the provider looks.
    const graf = svc.grafana;
    const gm = mounts(graf);
    const prov = gm.find((m) => m.target === '/etc/grafana/provisioning');
    assert.equal(path.resolve(sourceDir, prov?.source ?? ''), src('deploy/grafana/provisioning'));
    const providerPath = readYaml('deploy/grafana/provisioning/dashboards/ssehub.yml').providers[0].options.path;
    const dash = gm.find((m) => path.resolve(sourceDir, m.source) === src(DASHBOARD));
    assert.ok(dash, 'the dashboard is mounted');
    assert.equal(path.dirname(dash.target), providerPath, 'into the provider\'s folder');
    const ds = readYaml('deploy/grafana/provisioning/datasources/prometheus.yml').datasources[0];
    const dsUrl = new URL(ds.url);
    assert.ok(svc[dsUrl.hostname], `the data source host ${dsUrl.hostname} is a service`);
    assert.ok(prom.ports.some((p) => String(p.target ?? portOf(String(p)).split('/')[0]) === dsUrl.port), 'on Prometheus\'s port');
    assert.ok(graf.depends_on?.prometheus, 'grafana starts after prometheus');
  });
});
