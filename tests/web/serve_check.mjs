// Drives Chromium against `hub serve`: refused without the password (page and websocket), then signs in,
// waits for the terminal to draw, screenshots it, acknowledges the selected alert with Enter, and waits
// for the critical banner to go. Prints one JSON line of findings; tests/test_tui_web.py asserts on them.
import { chromium } from "playwright-core";

const [base, password, outDir, bannerHex] = process.argv.slice(2);
const banner = [1, 3, 5].map((i) => parseInt(bannerHex.slice(i, i + 2), 16));
const result = { external: [], frames: 0 };

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 640 } });
  page.on("request", (r) => { if (!r.url().startsWith(base) && !r.url().startsWith(base.replace("http", "ws"))) result.external.push(r.url()); });
  let last = Date.now();
  page.on("websocket", (ws) => ws.on("framereceived", () => { result.frames += 1; last = Date.now(); }));

  const refused = await page.goto(base + "/");
  result.page_without_password = refused.status();
  result.ws_without_password = await page.evaluate((url) => new Promise((done) => {
    const ws = new WebSocket(url);
    ws.onopen = () => { ws.close(); done("open"); };
    ws.onerror = () => done("refused");
  }), base.replace("http", "ws") + "/ws");

  await page.fill("#password", password);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
  result.page_with_password = (await page.evaluate(() => document.querySelector("#terminal") !== null)) ? 200 : 0;

  const quiet = async (ms, limit) => {
    const start = Date.now();
    while (Date.now() - start < limit) {
      if (result.frames > 0 && Date.now() - last > ms) return true;
      await page.waitForTimeout(100);
    }
    return false;
  };
  const bannerPixels = async () => {
    const shot = (await page.screenshot()).toString("base64");
    return page.evaluate(async ([data, rgb]) => {
      const img = new Image();
      img.src = "data:image/png;base64," + data;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = img.width; c.height = img.height;
      const g = c.getContext("2d");
      g.drawImage(img, 0, 0);
      const px = g.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < px.length; i += 4) {
        if (Math.abs(px[i] - rgb[0]) < 8 && Math.abs(px[i + 1] - rgb[1]) < 8 && Math.abs(px[i + 2] - rgb[2]) < 8) n++;
      }
      return n;
    }, [shot, banner]);
  };

  result.drawn = await quiet(1000, 20000);
  // A quiet terminal is not yet a terminal with the alert: on a slow box the first screen can sit still
  // for a second before the retained alert arrives. Wait for the banner itself, for at most 20 s.
  let before = await bannerPixels();
  for (let i = 0; i < 200 && before <= 1000; i++) {
    await page.waitForTimeout(100);
    before = await bannerPixels();
  }
  result.banner_pixels_before = before;
  await page.screenshot({ path: `${outDir}/alert.png` });
  await page.focus(".xterm-helper-textarea");  // keys go to the terminal (a click would pick a line)
  await page.keyboard.press("Enter");  // acknowledge the highlighted (critical) alert …
  await page.waitForTimeout(500);
  await page.keyboard.press("Enter");  // … without a note
  let after = result.banner_pixels_before;
  for (let i = 0; i < 100 && after > 0; i++) {  // the hub republishes it acknowledged: the banner goes
    await page.waitForTimeout(100);
    after = await bannerPixels();
  }
  result.banner_pixels_after = after;
  await page.screenshot({ path: `${outDir}/acknowledged.png` });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
