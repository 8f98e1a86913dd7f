// The deployment files, validated offline (no Docker engine, no Kubernetes
// cluster here): docker-compose.yml through docker-compose's own parser,
// deploy/Dockerfile's Debian packages against apt and against what the
// binaries link, the haproxy config that scripts/run.sh and the compose
// load balancer render through `haproxy -c`, and the Kustomize base and
// overlay rendered by kubectl and checked object by object against the
// Kubernetes schemas (the npm package kubernetes-models) -- including
// fields the schemas do not know, which `kubectl apply` refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { kustomize, run, runOk, which } from './lib/commands.mjs';
import { sourceDir, buildDir } from './lib/harness.mjs';

const src = (...p) => path.join(sourceDir, ...p);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ssehub-deploy-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

// The SSEHUB_* variables each binary accepts, from its --help (a variable
// it does not know stops it at start-up).
function knownEnv(binary) {
  const help = runOk(path.join(buildDir, binary), ['--help']);
  return new Set(help.match(/\bSSEHUB_[A-Z0-9_]+/g));
}
const nodeEnv = knownEnv('ssehub-node');
const brokerEnv = knownEnv('ssehub-broker');
const drainDefault = Number(runOk(path.join(buildDir, 'ssehub-node'), ['--help'])
  .match(/--drain-seconds[\s\S]*?\(default (\d+)/)[1]);

// ------------------------------------------------------------ Dockerfile

// The stages of deploy/Dockerfile: name -> {from, lines, packages}.
function dockerStages() {
  const text = fs.readFileSync(src('deploy/Dockerfile'), 'utf8');
  // Join continuation lines, drop comments.
  const logical = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  const args = {};
  const stages = new Map();
  let cur = null;
  for (const line of logical) {
    const [instr, ...rest] = line.split(/\s+/);
    const body = rest.join(' ');
    if (/^ARG$/i.test(instr) && !cur) {
      const [k, v] = body.split('=');
      args[k] = v;
    } else if (/^FROM$/i.test(instr)) {
      const m = body.match(/^(\S+)(?:\s+AS\s+(\S+))?$/i);
      const from = m[1].replace(/\$\{(\w+)\}/g, (_, k) => args[k] ?? '');
      cur = { name: m[2], from, lines: [], packages: [] };
      stages.set(m[2], cur);
    } else {
      cur.lines.push(line);
      if (/^RUN$/i.test(instr)) {
        for (const cmd of body.split(/&&|;/)) {
          const words = cmd.trim().split(/\s+/);
          const i = words.indexOf('install');
          if (i > 0 && words.slice(0, i).some((w) => w === 'apt-get')) {
            cur.packages.push(...words.slice(i + 1).filter((w) => !w.startsWith('-')));
          }
        }
      }
    }
  }
  return { stages, last: cur };
}

// A bash array from scripts/install-deps.sh (words, comments dropped).
function bashArray(name) {
  const text = fs.readFileSync(src('scripts/install-deps.sh'), 'utf8');
  const m = text.match(new RegExp(`^${name}=\\(([\\s\\S]*?)^\\)`, 'm'));
  assert.ok(m, `scripts/install-deps.sh defines ${name}`);
  return m[1].split('\n').map((l) => l.replace(/#.*/, '')).join(' ').split(/\s+/).filter(Boolean);
}

// apt-cache show of many packages at once (about a second per call):
// name -> its record (the candidate version), or absent when apt knows no
// such package.
function aptShow(pkgs) {
  const r = run('apt-cache', ['show', '--no-all-versions', ...new Set(pkgs)]);
  const records = new Map();
  for (const rec of r.stdout.split(/\n\n+/)) {
    const name = rec.match(/^Package: (\S+)/m)?.[1];
    if (name) records.set(name, rec);
  }
  return records;
}

test('deploy/Dockerfile: Debian 12 stages, real package names, the project\'s build dependencies', () => {
  const { stages, last } = dockerStages();
  assert.deepEqual([...stages.keys()].sort(), ['build', 'lb', 'redis', 'runtime']);
  assert.equal(last.name, 'runtime', 'the default (last) stage is the ssehub image');
  for (const s of stages.values()) assert.equal(s.from, 'debian:bookworm-slim', `stage ${s.name} is Debian 12`);

  const known = aptShow([...stages.values()].flatMap((s) => s.packages));
  for (const s of stages.values()) {
    assert.ok(s.packages.length, `stage ${s.name} installs Debian packages`);
    for (const p of s.packages) assert.ok(known.has(p), `stage ${s.name}: apt-cache show ${p} finds the package`);
  }
  assert.deepEqual([...stages.get('build').packages].sort(), bashArray('BUILD_PACKAGES').sort(),
    'the build stage installs exactly BUILD_PACKAGES of scripts/install-deps.sh');
  assert.ok(bashArray('APT_PACKAGES').includes('"${BUILD_PACKAGES[@]}"'), 'APT_PACKAGES includes BUILD_PACKAGES');
  assert.ok(bashArray('APT_PACKAGES_NO_RECOMMENDS').includes('docker-compose'));

  const rt = stages.get('runtime');
  const has = (re) => rt.lines.some((l) => re.test(l));
  assert.ok(has(/^COPY --from=build .*ssehub-node.*ssehub-broker/), 'runtime copies both binaries');
  assert.ok(has(/^USER (?!0\b|root\b)\S+/), 'runtime runs as a non-root user');
  assert.ok(has(/^EXPOSE 8080$/));
  assert.ok(has(/^HEALTHCHECK .*\/healthz/), 'HEALTHCHECK on /healthz');
  for (const name of ['lb', 'redis']) {
    assert.ok(stages.get(name).lines.some((l) => /^USER (?!0\b|root\b)\S+/.test(l)), `${name} runs as non-root`);
  }
  assert.ok(stages.get('redis').lines.some((l) => /^CMD .*"--appendonly", "yes"/.test(l)), 'redis stage: AOF on');
  // Every file a COPY names exists (the context is the repository root).
  for (const s of stages.values()) {
    for (const l of s.lines.filter((x) => /^COPY /.test(x) && !/--from=/.test(x))) {
      const parts = l.split(/\s+/).slice(1, -1);
      for (const p of parts) if (p !== '.') assert.ok(fs.existsSync(src(p)), `${s.name}: COPY ${p} exists`);
    }
  }
});

test('deploy/Dockerfile: the runtime stage provides every library the binaries link', () => {
  const { stages } = dockerStages();
  const runtime = new Set(stages.get('runtime').packages);
  const provided = new Set(runtime);
  const deps = runOk('apt-cache', ['depends', '--no-recommends', '--no-suggests', '--important', ...runtime]);
  for (const m of deps.matchAll(/Depends: <?([a-z0-9.+-]+)/g)) provided.add(m[1]);
  // Every library either binary loads (sanitizer runtimes of an ASan build
  // aside), and the Debian package it comes from.
  const lddLibs = (file) => [...runOk('ldd', [file]).matchAll(/=> (\/\S+)/g)].map((m) => m[1]);
  const libs = new Set();
  const sanitizer = new Set(); // what an ASan/UBSan build's runtimes bring
  for (const bin of ['ssehub-node', 'ssehub-broker']) {
    for (const lib of lddLibs(path.join(buildDir, bin))) {
      if (/\/lib(a|ub|l|t)san\.so/.test(lib)) lddLibs(lib).forEach((l) => sanitizer.add(l));
      else libs.add(lib);
    }
  }
  for (const lib of sanitizer) libs.delete(lib);
  assert.ok(libs.size >= 5, `ldd lists the libraries: ${[...libs]}`);
  // dpkg knows a file by the path its package installed it at: with the
  // merged /usr, /lib/x and /usr/lib/x are the same file.
  const candidates = (lib) => {
    const real = fs.realpathSync(lib);
    return [...new Set([lib, real].flatMap((f) => [f, f.replace(/^\/usr\/lib\//, '/lib/'), f.replace(/^\/lib\//, '/usr/lib/')]))];
  };
  const owners = new Map();
  const dpkg = run('dpkg', ['-S', ...[...libs].flatMap(candidates)]);
  for (const m of dpkg.stdout.matchAll(/^([^:\s]+)(?::[a-z0-9]+)?: (\S+)$/gm)) owners.set(m[2], m[1]);
  const pkgOf = new Map([...libs].map((lib) => [lib, candidates(lib).map((f) => owners.get(f)).find(Boolean)]));
  const records = aptShow([...pkgOf.values()].filter(Boolean));
  for (const [lib, pkg] of pkgOf) {
    assert.ok(pkg, `dpkg -S finds the package of ${lib}`);
    const priority = records.get(pkg)?.match(/^Priority: (\S+)/m)?.[1];
    assert.ok(provided.has(pkg) || priority === 'required',
      `the binaries link ${lib} from ${pkg}: the runtime stage installs neither it nor a package depending on it`);
  }
});

// ------------------------------------------------------------ docker-compose

const compose = () => parseYaml(runOk('docker-compose', ['-f', 'docker-compose.yml', 'config']));

test('docker-compose.yml: docker-compose config accepts it', () => {
  assert.ok(which('docker-compose'), 'docker-compose is installed (scripts/install-deps.sh)');
  runOk('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q']);
});

test('docker-compose.yml: redis with AOF, 2 brokers, 3 healthy-checked nodes, the load balancer, a publisher', () => {
  const c = compose();
  const svc = c.services;
  const { stages } = dockerStages();
  for (const [name, s] of Object.entries(svc)) {
    // The opt-in "monitoring" profile runs upstream Prometheus and Grafana
    // images (tests/e2e/observability.test.mjs checks those services).
    if (s.profiles?.includes('monitoring')) continue;
    assert.ok(s.build, `${name} is built here, never pulled`);
    assert.equal(s.build.dockerfile, 'deploy/Dockerfile');
    assert.ok(stages.has(s.build.target), `${name}: target ${s.build.target} is a stage of deploy/Dockerfile`);
  }
  const byCmd = (bin) => Object.keys(svc).filter((n) => (svc[n].command ?? [])[0] === bin);
  const brokers = byCmd('ssehub-broker');
  const nodes = byCmd('ssehub-node');
  assert.equal(brokers.length, 2, 'two brokers');
  assert.equal(nodes.length, 3, 'three nodes');

  // Redis: the redis stage's command (AOF) and a volume on /data.
  assert.equal(svc.redis.build.target, 'redis');
  assert.ok(!svc.redis.command, 'redis runs the image command (AOF on)');
  assert.ok((svc.redis.volumes ?? []).some((v) => (v.target ?? String(v).split(':')[1]) === '/data'), 'redis data on a volume');
  assert.ok(c.volumes && Object.keys(c.volumes).length);

  for (const n of [...brokers, ...nodes]) {
    const env = svc[n].environment;
    const known = nodes.includes(n) ? nodeEnv : brokerEnv;
    for (const k of Object.keys(env)) assert.ok(known.has(k), `${n}: ${k} is a setting of the binary`);
    assert.equal(env.SSEHUB_REDIS_URL, 'redis://redis:6379');
    assert.equal(svc[n].depends_on.redis.condition, 'service_healthy');
  }
  for (const n of nodes) {
    const hc = svc[n].healthcheck.test.join(' ');
    assert.match(hc, /curl .*http:\/\/127\.0\.0\.1:8080\/(readyz|healthz)/, `${n} has a health check on a node endpoint`);
    const grace = parseInt(svc[n].stop_grace_period, 10);
    const drain = Number(svc[n].environment.SSEHUB_DRAIN_SECONDS ?? drainDefault);
    assert.ok(grace > drain + 2, `${n}: stop_grace_period ${grace}s > drain ${drain}s + the listener delay`);
  }
  for (const b of brokers) {
    const hc = svc[b].healthcheck; // docker-compose 1.29 prints "disable: true" as test: [NONE]
    assert.ok(hc.disable === true || hc.test?.[0] === 'NONE', `${b}: the image's HTTP health check is off`);
  }

  // The load balancer: every node is a server, and only loopback is published.
  const lb = svc.lb;
  assert.equal(lb.build.target, 'lb');
  const servers = lb.environment.LB_SERVERS.split(/\s+/).map((s) => s.split('=')[1].split(':')[0]);
  assert.deepEqual(servers.sort(), nodes.sort());
  assert.ok(lb.ports.every((p) => (p.host_ip ?? String(p).split(':')[0]) === '127.0.0.1'), 'published on loopback');

  assert.match(svc.publisher.command.join(' '), /redis-cli -h redis PUBLISH sse:demo/);
});

// ------------------------------------------------------------ haproxy

function haproxyCheck(cfgText, what) {
  const file = path.join(tmp, `${what}.cfg`);
  fs.writeFileSync(file, cfgText);
  const r = run('haproxy', ['-c', '-f', file]);
  assert.equal(r.status, 0, `haproxy -c refuses the ${what} config:\n${r.stdout}\n${r.stderr}\n${cfgText}`);
}

test('haproxy: the config scripts/run.sh renders parses (haproxy -c), on loopback, /readyz checks', () => {
  const runSh = fs.readFileSync(src('scripts/run.sh'), 'utf8');
  const lbPort = runSh.match(/^LB_PORT=(\d+)/m)[1];
  const ports = runSh.match(/^NODE_PORTS=\(([\d ]+)\)/m)[1].trim().split(/\s+/);
  assert.equal(lbPort, '8080');
  assert.equal(ports.length, 3);
  assert.match(runSh, /deploy\/lb\/render\.sh" --bind-addr "\$HOST"/);
  const cfg = runOk('sh', ['deploy/lb/render.sh', '--bind-addr', '127.0.0.1', '--stats-socket', path.join(tmp, 'lb.sock'),
    lbPort, ...ports.map((p, i) => `node${i + 1}=127.0.0.1:${p}`)]);
  assert.match(cfg, /^\s*bind 127\.0\.0\.1:8080\s*$/m);
  assert.doesNotMatch(cfg, /^\s*bind \*:/m);
  for (const p of ports) assert.match(cfg, new RegExp(`^\\s*server node\\d 127\\.0\\.0\\.1:${p} check`, 'm'));
  assert.match(cfg, /option httpchk GET \/readyz/);
  assert.match(cfg, /timeout tunnel/);
  haproxyCheck(cfg, 'run');
});

test('haproxy: the compose lb entrypoint renders a config that parses (haproxy -c)', () => {
  const lb = compose().services.lb;
  // A stand-in haproxy on PATH: `-c` goes to the real one, the final exec
  // only records its arguments.
  const bin = path.join(tmp, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const real = which('haproxy') ?? '/usr/sbin/haproxy';
  fs.writeFileSync(path.join(bin, 'haproxy'),
    `#!/bin/sh\ncase " $* " in *" -c "*) exec ${real} "$@" ;; esac\necho "$@" > "${tmp}/exec-args"\n`, { mode: 0o755 });
  const cfgFile = path.join(tmp, 'compose-lb.cfg');
  const r = run('sh', ['deploy/lb/entrypoint.sh'], {
    env: { ...process.env, ...lb.environment, LB_CONFIG: cfgFile, PATH: `${bin}:${process.env.PATH}` },
  });
  assert.equal(r.status, 0, `entrypoint failed:\n${r.stdout}\n${r.stderr}`);
  assert.equal(fs.readFileSync(path.join(tmp, 'exec-args'), 'utf8').trim(), `-db -f ${cfgFile}`);
  const cfg = fs.readFileSync(cfgFile, 'utf8');
  for (const n of ['node1', 'node2', 'node3']) {
    assert.match(cfg, new RegExp(`^\\s*server ${n} ${n}:8080 check resolvers ssehub_dns init-addr libc,none`, 'm'));
  }
  assert.match(cfg, /^\s*bind \*:8080\s*$/m);
  assert.match(cfg, /^resolvers ssehub_dns$/m);
  haproxyCheck(cfg, 'compose');
});

// ------------------------------------------------------------ Kubernetes

// Validates one object with its kubernetes-models class and reports the
// fields the schema does not know: the generated validators read every
// property their schema defines, so a property of an object that is never
// read is unknown (maps such as labels are enumerated, so all read).
async function validateK8s(obj) {
  let mod;
  try {
    mod = await import(`kubernetes-models/${obj.apiVersion}`);
  } catch {
    assert.fail(`${obj.kind} ${obj.metadata?.name}: no schema for apiVersion ${obj.apiVersion}`);
  }
  const Model = mod[obj.kind];
  assert.ok(Model, `${obj.apiVersion} has kind ${obj.kind}`);
  const records = [];
  const wrap = (value, where) => {
    if (value === null || typeof value !== 'object') return value;
    const isArr = Array.isArray(value);
    const read = new Set();
    if (!isArr) records.push({ where, value, read });
    const cache = new Map();
    return new Proxy(value, {
      get(t, p, r) {
        if (typeof p !== 'string' || !Object.hasOwn(t, p)) return Reflect.get(t, p, r);
        read.add(p);
        if (!cache.has(p)) cache.set(p, wrap(t[p], isArr ? `${where}[${p}]` : `${where}.${p}`));
        return cache.get(p);
      },
      ownKeys(t) {
        for (const k of Object.keys(t)) read.add(k);
        return Reflect.ownKeys(t);
      },
    });
  };
  const label = `${obj.kind}/${obj.metadata?.name}`;
  const proxy = wrap(structuredClone(obj), '');
  try {
    Model.prototype.validate.call(proxy);
  } catch (e) {
    assert.fail(`${label} does not validate: ${e.message}`);
  }
  new Model(obj).validate(); // the plain API, for good measure
  const unknown = records.flatMap(({ where, value, read }) =>
    Object.keys(value).filter((k) => !read.has(k)).map((k) => `${where}.${k}`));
  assert.deepEqual(unknown, [], `${label} has fields the Kubernetes schema does not know`);
}

const find = (objs, kind, name) => objs.find((o) => o.kind === kind && (!name || o.metadata.name === name));
const matches = (selector, labels) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

test('the schema check notices wrong types and unknown fields', async () => {
  const { Deployment } = await import('kubernetes-models/apps/v1');
  const good = {
    apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'x', labels: { any: 'label' } },
    spec: { selector: { matchLabels: { a: 'b' } }, template: { metadata: { labels: { a: 'b' } }, spec: { containers: [{ name: 'c', image: 'i' }] } } },
  };
  await validateK8s(good);
  const typo = structuredClone(good);
  typo.spec.template.spec.containers[0].readinesProbe = { httpGet: { path: '/readyz', port: 8080 } };
  await assert.rejects(validateK8s(typo), /readinesProbe/);
  const wrongType = structuredClone(good);
  wrongType.spec.replicas = 'three';
  await assert.rejects(validateK8s(wrongType), /replicas must be integer/);
  assert.ok(Deployment);
});

test('Kubernetes base: kubectl kustomize renders it and every object validates', async () => {
  const objs = kustomize('deploy/k8s/base');
  for (const o of objs) await validateK8s(o);
  const kinds = objs.map((o) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, '')}`).sort();
  assert.deepEqual(kinds, [
    'ConfigMap/ssehub-config', 'Deployment/ssehub-broker', 'Deployment/ssehub-node',
    'HorizontalPodAutoscaler/ssehub-node', 'Ingress/ssehub', 'PodDisruptionBudget/ssehub-broker',
    'PodDisruptionBudget/ssehub-node', 'Secret/ssehub-redis', 'Service/redis', 'Service/redis-headless',
    'Service/ssehub-node', 'StatefulSet/redis',
  ]);

  const config = find(objs, 'ConfigMap');
  const secret = find(objs, 'Secret', 'ssehub-redis');
  const node = find(objs, 'Deployment', 'ssehub-node');
  const broker = find(objs, 'Deployment', 'ssehub-broker');

  // Settings: every key is a setting (both binaries accept every name;
  // --help lists those each one uses).
  for (const k of Object.keys(config.data)) {
    assert.ok(nodeEnv.has(k) || brokerEnv.has(k), `ConfigMap key ${k} is an ssehub setting`);
  }
  const drain = Number(config.data.SSEHUB_DRAIN_SECONDS ?? drainDefault);

  for (const [d, replicas] of [[node, 3], [broker, 2]]) {
    assert.equal(d.spec.replicas, replicas, `${d.metadata.name} replicas`);
    const pod = d.spec.template.spec;
    const c = pod.containers[0];
    assert.ok(matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels));
    assert.equal(c.image, 'ssehub:latest');
    assert.equal(c.envFrom[0].configMapRef.name, config.metadata.name, 'envFrom the generated ConfigMap');
    const url = c.env.find((e) => e.name === 'SSEHUB_REDIS_URL').valueFrom.secretKeyRef;
    assert.equal(url.name, secret.metadata.name);
    assert.ok(secret.stringData[url.key], 'the Secret has the Redis URL key');
    assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory, 'resources');
    assert.ok(pod.securityContext.runAsNonRoot);
    assert.ok(pod.topologySpreadConstraints.length);
  }

  // The node: probes, drain and grace period, spread.
  const pod = node.spec.template.spec;
  const c = pod.containers[0];
  assert.deepEqual(c.command, ['ssehub-node']);
  assert.equal(c.readinessProbe.httpGet.path, '/readyz');
  assert.equal(c.livenessProbe.httpGet.path, '/healthz');
  const preStop = c.lifecycle.preStop.exec.command;
  assert.equal(preStop[0], 'sleep');
  const preStopSeconds = Number(preStop[1]);
  assert.ok(preStopSeconds >= 3, 'preStop waits a few seconds for endpoints to drop the pod');
  assert.ok(pod.terminationGracePeriodSeconds > preStopSeconds + 2 + drain + 5,
    `terminationGracePeriodSeconds ${pod.terminationGracePeriodSeconds} > preStop ${preStopSeconds} + 2 + drain ${drain} + margin`);
  for (const t of pod.topologySpreadConstraints) assert.ok(matches(t.labelSelector.matchLabels, node.spec.template.metadata.labels));
  assert.ok(pod.topologySpreadConstraints.some((t) => t.topologyKey === 'kubernetes.io/hostname'));
  assert.equal(Number(config.data.SSEHUB_THREADS), Number(c.resources.limits.cpu), 'threads = CPU limit');
  assert.equal(node.spec.strategy.rollingUpdate.maxUnavailable, 0);
  assert.deepEqual(broker.spec.template.spec.containers[0].command, ['ssehub-broker']);

  // Service, Ingress, HPA, PDBs point at the right things.
  const svc = find(objs, 'Service', 'ssehub-node');
  assert.ok(matches(svc.spec.selector, node.spec.template.metadata.labels));
  assert.equal(svc.spec.ports[0].targetPort, c.ports[0].name);
  const ing = find(objs, 'Ingress');
  const a = ing.metadata.annotations;
  assert.equal(a['nginx.ingress.kubernetes.io/proxy-buffering'], 'off');
  assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-read-timeout']) >= 600);
  assert.ok(Number(a['nginx.ingress.kubernetes.io/proxy-send-timeout']) >= 600);
  assert.equal(ing.spec.rules[0].http.paths[0].backend.service.name, 'ssehub-node');
  const hpa = find(objs, 'HorizontalPodAutoscaler');
  assert.equal(hpa.apiVersion, 'autoscaling/v2');
  assert.deepEqual([hpa.spec.scaleTargetRef.kind, hpa.spec.scaleTargetRef.name], ['Deployment', 'ssehub-node']);
  assert.ok(hpa.spec.minReplicas >= 2);
  const nodePdb = find(objs, 'PodDisruptionBudget', 'ssehub-node');
  assert.ok(matches(nodePdb.spec.selector.matchLabels, node.spec.template.metadata.labels));
  const brokerPdb = find(objs, 'PodDisruptionBudget', 'ssehub-broker');
  assert.ok(matches(brokerPdb.spec.selector.matchLabels, broker.spec.template.metadata.labels));

  // Redis: AOF, a volume claim mounted at its data directory, the Service
  // the Secret's URL names.
  const redis = find(objs, 'StatefulSet', 'redis');
  const rc = redis.spec.template.spec.containers[0];
  const args = rc.args.join(' ');
  assert.match(args, /--appendonly yes/);
  assert.match(args, /--maxmemory-policy noeviction/);
  const dir = args.match(/--dir (\S+)/)[1];
  const claim = redis.spec.volumeClaimTemplates[0];
  assert.ok(rc.volumeMounts.some((m) => m.name === claim.metadata.name && m.mountPath === dir), 'AOF on the claimed volume');
  const redisHost = new URL(secret.stringData.SSEHUB_REDIS_URL).hostname;
  const redisSvc = find(objs, 'Service', redisHost);
  assert.ok(redisSvc, `the Secret's Redis host ${redisHost} is a Service`);
  assert.ok(matches(redisSvc.spec.selector, redis.spec.template.metadata.labels));
  assert.equal(find(objs, 'Service', redis.spec.serviceName)?.spec.clusterIP, 'None', 'governing headless Service');
});

test('Kubernetes overlay example: renders, validates, external Redis instead of the StatefulSet', async () => {
  const objs = kustomize('deploy/k8s/overlays/example');
  for (const o of objs) await validateK8s(o);
  assert.ok(objs.every((o) => o.metadata.namespace === 'ssehub'));
  assert.ok(!find(objs, 'StatefulSet'), 'no in-cluster Redis');
  assert.ok(!find(objs, 'Service', 'redis'));
  const url = new URL(find(objs, 'Secret', 'ssehub-redis').stringData.SSEHUB_REDIS_URL);
  assert.notEqual(url.hostname, 'redis');
  const node = find(objs, 'Deployment', 'ssehub-node');
  assert.match(node.spec.template.spec.containers[0].image, /^registry\.example\.com\/ssehub:/);
  assert.equal(find(objs, 'Deployment', 'ssehub-broker').spec.replicas, 2);
  assert.ok(find(objs, 'Ingress').spec.tls);
});
