#!/usr/bin/env node
/*
 * test_console_page.js -- the console's page in a real browser: Debian's
 * headless chromium driven by puppeteer-core (tests/node, no browser
 * download) against a running `embeddb serve` on the Python demo's store.
 * Fills the form, stores a 32x32 ramp, sees it in the pipeline view and as
 * a heatmap, reads the summary line from the page, flushes and sees the SST
 * appear, checks the DL-model panel (found, then a file missing), and saves
 * a screenshot to BUILD_DIR/console-screenshot.png (the README's).
 *
 * Usage: node test_console_page.js BUILD_DIR REPO_ROOT
 */
"use strict";
const { spawn, execFileSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const assert = require("assert");

const [BUILD, ROOT] = process.argv.slice(2).map((p) => path.resolve(p));
const puppeteer = require(path.join(ROOT, "tests", "node", "node_modules", "puppeteer-core"));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = { timeout: 30000, polling: 50 };
/* Shown on the page: laid out, not just without a hidden attribute. */
const shown = (id) => getComputedStyle(document.getElementById(id)).display !== "none";

function startServe(store, demo) {
  return new Promise((resolve, reject) => {
    const p = spawn(path.join(BUILD, "cli", "embeddb"),
      ["serve", store, "--listen", "127.0.0.1:0", "--demo-dir", demo, "--memtable-max", "262144"],
      { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:(\d+)\//);
      if (m) resolve({ p, url: m[0] });
    });
    p.on("exit", (code) => reject(new Error(`embeddb serve exited ${code}: ${out}`)));
  });
}

async function apiLoad(url, key) {
  const r = await fetch(`${url}api/tensors/load?key=${encodeURIComponent(key)}`);
  return r.json();
}

async function main() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "embeddb-browser-"));
  const demo = path.join(tmp, "demo");
  execFileSync("/usr/bin/python3", [path.join(ROOT, "examples", "python_demo", "dl_model_demo.py"),
    "--out", demo, "--embeddb", path.join(BUILD, "cli", "embeddb")], { stdio: "ignore" });
  const { p, url } = await startServe(path.join(demo, "store"), demo);
  let browser;
  const pageErrors = [];
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM, headless: true,
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    const page = await browser.newPage();
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") pageErrors.push(m.text()); });
    await page.setViewport({ width: 1280, height: 1000 });
    await page.goto(url + "?poll=200", { waitUntil: "load" });
    await page.waitForFunction(() => document.getElementById("conn").textContent === "live", WAIT);
    // the demo's store: one SST with its three tensors, nothing in the MemTable
    await page.waitForFunction(() => document.querySelectorAll("#sst-list li").length === 1, WAIT);
    const sst0 = await page.$eval("#sst-list li", (e) => e.textContent);
    assert.match(sst0, /^sst_\d{6}\.sst · 3 · /);

    // the form: a 32x32 float32 ramp, like a camera frame
    const set = async (sel, v) => page.$eval(sel, (e, v) => { e.value = v; }, v);
    await set("#name", "camera_frame");
    await set("#key", "cam/frame32");
    await page.select("#dtype", "float32");
    await set("#shape", "32x32");
    await page.select("#fill", "ramp");
    await page.click("#store-btn");
    await page.waitForFunction(() => document.getElementById("summary").textContent.length > 0, WAIT);
    const summary = await page.$eval("#summary", (e) => e.textContent);
    const fromApi = await apiLoad(url, "cam/frame32");
    assert.strictEqual(summary, fromApi.summary);
    assert.match(summary, /^camera_frame \(32x32\) -> 0, 0\.000977517, /);
    const journey = await page.$$eval("#journey li", (l) => l.map((e) => e.textContent));
    assert.match(journey[1], /^WAL append: wal_\d{6}\.log at offset \d+, .* 1 fsync → seq \d+$/);
    assert.strictEqual(await page.evaluate(`(${shown})("error")`), false);

    // a heatmap that looks like the frame: a ramp from black to white, row by row
    const px = await page.$eval("#heatmap", (c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      const at = (x, y) => d[4 * (y * c.width + x)];
      return { w: c.width, h: c.height, hidden: getComputedStyle(c).display === "none", tl: at(0, 0), br: at(c.width - 1, c.height - 1),
               mid: at(0, c.height / 2) };
    });
    assert.deepStrictEqual([px.w, px.h, px.hidden], [256, 256, false]);
    assert.strictEqual(px.tl, 0);
    assert.strictEqual(px.br, 255);
    assert.ok(Math.abs(px.mid - 128) <= 2, `mid ${px.mid}`);

    // the pipeline view sees it in the WAL and the MemTable
    await page.waitForFunction(() => /^1 tensors/.test(document.getElementById("memtable-text").textContent), WAIT);
    assert.match(await page.$eval("#wal-name", (e) => e.textContent), /^wal_\d{6}\.log$/);
    const width = await page.$eval("#memtable-bar", (e) => parseFloat(e.style.width));
    assert.ok(width > 1.5 && width < 2, `the MemTable bar fills ${width}% (4 KiB of 256 KiB)`);

    // a preview of 5 values is a sparkline with the summary of those 5
    await set("#preview", "5");
    await page.click("#load-btn");
    await page.waitForFunction(`(${shown})("sparkline") && !(${shown})("heatmap")`, WAIT);
    assert.match(await page.$eval("#meta", (e) => e.textContent), /preview of 5 of 1024 values/);
    await set("#preview", "");
    await page.click("#load-btn");
    await page.waitForFunction(`(${shown})("heatmap") && !(${shown})("sparkline")`, WAIT);

    // flush: the SST appears, the MemTable empties
    await page.click("#flush-btn");
    await page.waitForFunction(() => document.querySelectorAll("#sst-list li").length === 2, WAIT);
    const newest = await page.$eval("#sst-list li", (e) => e.textContent);
    assert.match(newest, /^sst_\d{6}\.sst · 1 · .* · cam\/frame32…cam\/frame32$/);
    await page.waitForFunction(() => /^0 tensors/.test(document.getElementById("memtable-text").textContent), WAIT);
    assert.match(await page.$eval("#action-result", (e) => e.textContent), /^flushed 1 to sst_/);

    // the listing shows it; the DL-model panel compares the demo's files
    await page.waitForFunction(() => [...document.querySelectorAll("#tensor-list td")]
      .some((td) => td.textContent === "cam/frame32"), WAIT);
    await page.waitForFunction(() => document.getElementById("demo-table").textContent.includes("weights_baseline.json"), WAIT);
    assert.strictEqual(await page.evaluate(`(${shown})("demo-missing")`), false);

    await page.screenshot({ path: path.join(BUILD, "console-screenshot.png"), fullPage: true });

    // a missing demo file is highlighted, with the command that makes it
    fs.unlinkSync(path.join(demo, "weights_baseline.json"));
    await page.reload({ waitUntil: "load" });
    await page.waitForFunction(`(${shown})("demo-missing")`, WAIT);
    const missing = await page.$eval("#demo-missing", (e) => e.textContent);
    assert.match(missing, /^Missing: weights_baseline\.json\. Regenerate with: python3 examples\/python_demo\/dl_model_demo\.py --out /);
    assert.ok((await page.$$eval("#demo-table td.missing", (l) => l.length)) >= 2);

    // a refused store shows the server's reason, and stores nothing
    await set("#key", "bad");
    await page.select("#fill", "typed");
    await set("#values", "1, 2, 3");
    await page.click("#store-btn");
    await page.waitForFunction(`(${shown})("error")`, WAIT);
    assert.match(await page.$eval("#error", (e) => e.textContent), /needs 1024 values, 3 typed/);
    assert.deepStrictEqual(pageErrors, []);
    console.log("ok: page stored, drew, flushed and compared; screenshot in", path.join(BUILD, "console-screenshot.png"));
  } finally {
    if (browser) await browser.close();
    p.kill("SIGTERM");
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
