// docs/deploy.md's Kubernetes example: every YAML block parses, the objects refer to each other
// consistently, and `rnnkit serve` runs with the Deployment's own arguments (paths and port mapped
// to this machine), taking the Secret's keys and exporting the metric the autoscaler reads.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

import { CharTokenizer, LanguageModel } from '../../lib/index';
import { ROOT } from '../helpers/cli';
import { serveCli } from '../helpers/serve-cli';
import { tmpDir } from '../helpers/tmp';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const text = fs.readFileSync(path.join(ROOT, 'docs', 'deploy.md'), 'utf8');
const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
const objects: Obj[] = [];

beforeAll(() => {
  for (const block of blocks) {
    for (const doc of parseAllDocuments(block)) {
      expect(doc.errors, block).toEqual([]);
      objects.push(doc.toJS() as Obj);
    }
  }
});

const kind = (k: string) => {
  const found = objects.filter((o) => o.kind === k);
  expect(found.length, k).toBe(1);
  return found[0];
};

/** The value after `flag` in a container's args. */
const flagValue = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

describe("docs/deploy.md's Kubernetes example", () => {
  it('parses, and its objects refer to each other', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    const deployment = kind('Deployment');
    const service = kind('Service');
    const hpa = kind('HorizontalPodAutoscaler');
    const secret = kind('Secret');
    const pod = deployment.spec.template;
    expect(deployment.spec.selector.matchLabels).toEqual(pod.metadata.labels);
    expect(service.spec.selector).toEqual(pod.metadata.labels);
    const [container] = pod.spec.containers;
    const port = container.ports.find((p: Obj) => p.name === service.spec.ports[0].targetPort);
    expect(port.containerPort).toBe(Number(flagValue(container.args, '--port')));
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      expect(probe.httpGet).toEqual({ path: '/health', port: 'http' });
    }
    // The grace period covers the preStop pause and the drain, which covers the longest request.
    const preStop = Number(container.lifecycle.preStop.exec.command[1]);
    const drain = Number(flagValue(container.args, '--shutdown-timeout'));
    expect(drain).toBeGreaterThanOrEqual(Number(flagValue(container.args, '--request-timeout')));
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(preStop + drain);
    expect(pod.spec.volumes[0].secret.secretName).toBe(secret.metadata.name);
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: deployment.apiVersion,
      kind: 'Deployment',
      name: deployment.metadata.name,
    });
    const adapter = objects.find((o) => Array.isArray(o.rules))!;
    expect(adapter.rules[0].name.as).toBe(hpa.spec.metrics[0].pods.metric.name);
  });

  describe('rnnkit serve with the Deployment arguments', () => {
    const dir = tmpDir();
    let args: string[];
    let keys: string[];
    beforeAll(async () => {
      const model = new LanguageModel({
        tokenizer: CharTokenizer.fromText('the quick brown fox'),
        hiddenSize: 8,
        seed: 1,
      });
      const modelFile = path.join(dir, 'lm.safetensors');
      await model.save(modelFile);
      const secret = kind('Secret').stringData.keys as string;
      keys = secret.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
      const keyFile = path.join(dir, 'keys');
      fs.writeFileSync(keyFile, secret);
      const container = kind('Deployment').spec.template.spec.containers[0];
      const mapped: Record<string, string> = {
        '/models/lm.safetensors': modelFile,
        '/etc/rnnkit/keys': keyFile,
        '0.0.0.0': '127.0.0.1',
        '8080': '0',
      };
      expect(container.args[0]).toBe('serve');
      args = container.args.slice(1).map((a: string) => mapped[a] ?? a);
    });

    it('serves with the keys of the Secret and exports the queue depth', async () => {
      expect(keys.length).toBe(2);
      const server = await serveCli([...args, '--threads', '1']);
      try {
        expect((await fetch(`${server.url}/health`)).status).toBe(200);
        for (const key of keys) {
          const r = await fetch(`${server.url}/v1/models`, {
            headers: { Authorization: `Bearer ${key}` },
          });
          expect(((await r.json()) as { data: { id: string }[] }).data[0].id).toBe('lm');
        }
        expect((await fetch(`${server.url}/v1/models`)).status).toBe(401);
        const metrics = await (await fetch(`${server.url}/metrics`)).text();
        const metric = kind('HorizontalPodAutoscaler').spec.metrics[0].pods.metric.name;
        expect(metrics).toContain(`# TYPE ${metric} gauge`);
      } finally {
        await server.stop();
      }
    });
  });
});
