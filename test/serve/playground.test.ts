// The playground page (lib/serve/playground.ts) in headless Chromium (Debian's `chromium`, driven
// by playwright-core): a prompt streams the library's text into the page, and a sequence-to-
// sequence model shows its n-best translations and the attention heatmap. Screenshots are kept in
// test-artifacts/. CI installs chromium; without it the test skips here and fails in CI.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  BatchingGenerator,
  CharTokenizer,
  LanguageModel,
  startServer,
  type RunningServer,
} from '../../lib/index';
import { tinySeq2Seq } from '../helpers/models';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) {
  throw new Error(`CI must install chromium (${CHROMIUM} is missing; apt-get install chromium)`);
}
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');

const corpus = 'the quick brown fox jumps over the lazy dog. ';
const closing: { close(): Promise<void> }[] = [];
let browser: Browser;

beforeAll(async () => {
  if (!hasChromium) return;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM });
});

afterAll(async () => {
  await browser?.close();
  for (const c of closing.reverse()) await c.close();
});

async function openPage(server: RunningServer): Promise<Page> {
  const page = await browser.newPage();
  // The page may reach nothing but its own server.
  const outside: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(server.url) && !r.url().startsWith('data:')) outside.push(r.url());
  });
  page.on('close', () => expect(outside).toEqual([]));
  await page.goto(`${server.url}/`);
  return page;
}

describe.skipIf(!hasChromium)('the playground in headless Chromium', () => {
  it('streams the completion of a prompt into the page', async () => {
    const model = new LanguageModel({
      tokenizer: CharTokenizer.fromText(corpus),
      hiddenSize: 64,
      numLayers: 2,
      seed: 9,
    });
    const generator = await BatchingGenerator.fromModel(model);
    closing.push(generator);
    const server = await startServer(generator, { port: 0, modelName: 'fox' });
    closing.push(server);
    const page = await openPage(server);
    await expect.poll(() => page.textContent('#model')).toMatch(/^language model fox: lstm/);
    await page.fill('#prompt', 'the lazy');
    await page.fill('#temperature', '0.9');
    await page.fill('#top_k', '12');
    await page.fill('#max_tokens', '2000');
    await page.fill('#seed', '21');
    // Count the times the output grows: streamed text arrives in many pieces.
    await page.evaluate(() => {
      const out = document.getElementById('output')!;
      new MutationObserver(
        () => (out.dataset.updates = String(Number(out.dataset.updates ?? 0) + 1)),
      ).observe(out, { childList: true, characterData: true, subtree: true });
    });
    await page.click('#generate');
    await page.waitForSelector('#output[data-finish]');
    const [want] = await model.generate({
      prompts: ['the lazy'],
      temperature: 0.9,
      topK: 12,
      maxTokens: 2000,
      seed: 21,
    });
    expect(await page.textContent('#output')).toBe(want);
    // Streamed: the text reached the page in more than one piece. (Alone this run counts hundreds
    // of updates; under a full suite's load the browser coalesced 300 tokens into 3 reads, so the
    // stream is long and the bound is the property itself.)
    expect(Number(await page.getAttribute('#output', 'data-updates'))).toBeGreaterThan(1);
    await expect.poll(() => page.textContent('#stats')).toMatch(/^2000 tokens, [\d.]+ tokens\/s$/);
    expect(await page.textContent('#error')).toBe('');
    await page.screenshot({ path: path.join(ARTIFACTS, 'playground-language-model.png') });
    await page.close();
  });

  it('shows the n-best translations and the attention heatmap of a seq2seq model', async () => {
    const model = tinySeq2Seq();
    const server = await startServer(model, { port: 0 });
    closing.push(server);
    const page = await openPage(server);
    await expect.poll(() => page.textContent('#model')).toMatch(/^sequence-to-sequence/);
    await page.fill('#source', 'fade');
    await page.fill('#beam', '4');
    await page.fill('#n_best', '3');
    await page.click('#translate');
    await page.waitForSelector('#heatmap img');
    const [t] = await model.translate(['fade'], { beam: 4, nBest: 3 });
    const items = await page.$$eval('#hypotheses li', (li) => li.map((e) => e.textContent));
    expect(items).toEqual(t.hypotheses.map((h) => `${h.text}  (${h.score.toFixed(4)})`));
    const size = await page.$eval('#heatmap img', (img) => {
      const i = img as HTMLImageElement;
      return { complete: i.complete, width: i.naturalWidth, src: i.src.slice(0, 25) };
    });
    expect(size).toEqual({
      complete: true,
      width: expect.any(Number),
      src: 'data:image/svg+xml;base64',
    });
    expect(size.width).toBeGreaterThan(50);
    await page.screenshot({ path: path.join(ARTIFACTS, 'playground-seq2seq.png'), fullPage: true });
    await page.close();
  });
});
