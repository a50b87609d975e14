// What the browser test scripts share: log lines with the time since start, failing with a message, steps that
// fail with their name, numbered screenshots, and Debian's Chromium launched the same way.

import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

/** `tag` prefixes every log line (`[tag +1.2s] …`); screenshots go to `shots`, numbered in order. */
export function harness(tag, shots) {
  const started = Date.now();
  let shotNo = 0;
  fs.mkdirSync(shots, { recursive: true });
  const log = (msg) => console.log(`[${tag} +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
  const fail = (msg) => {
    console.error(`[${tag}] FAILED: ${msg}`);
    process.exit(1);
  };
  return {
    log,
    fail,
    async step(name, fn) {
      log(`▶ ${name}`);
      try {
        await fn();
      } catch (e) {
        fail(`${name}: ${e.message.split('\n')[0]}`);
      }
    },
    async shot(page, name) {
      shotNo += 1;
      const file = path.join(shots, `${String(shotNo).padStart(2, '0')}-${name}.png`);
      await page.screenshot({ path: file, fullPage: false });
      log(`screenshot ${file}`);
    },
  };
}

/** Debian's Chromium, headless unless `headful`; playwright gives each launch a fresh temporary profile. */
export function launch(executablePath, headful = false) {
  return chromium.launch({
    executablePath,
    headless: !headful,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
