// The web journey of crates/kachery/tests/web_journey.rs: one person, in a real headless
// Chromium, signs in at an OpenID Connect provider, registers their node from the link `kachery node register` printed,
// creates a channel, joins it with requested roles, grants roles, sees the effective roles,
// mints and uses a passcode, tests the channel and signs out. A screenshot of each page goes
// to SCREENSHOT_DIR. Any failed expectation throws, and the process exits non-zero.
//
// Inputs (environment): HUB_URL, OIDC_ISSUER, REGISTER_LINK, NODE_ID, OWNER, CHANNEL,
// SCREENSHOT_DIR.
// Output: one JSON line on stdout with what the Rust test checks afterwards.
"use strict";

const path = require("path");
const { chromium } = require("playwright-core");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`journey.js needs the environment variable ${name}`);
  return value;
};

const hubUrl = env("HUB_URL").replace(/\/+$/, "");
const registerLink = env("REGISTER_LINK");
const nodeId = env("NODE_ID");
const owner = env("OWNER");
const oidcIssuer = env("OIDC_ISSUER");
const channel = env("CHANNEL");
const screenshotDir = env("SCREENSHOT_DIR");

function expect(condition, message) {
  if (!condition) throw new Error(`expectation failed: ${message}`);
}

async function main() {
  let failureShot = async () => {};
  try {
    return await journey((shoot) => { failureShot = shoot; });
  } catch (error) {
    await failureShot().catch(() => {});
    throw error;
  }
}

// Walks the journey; `onPage` gets a function that screenshots the current page, used
// when a step fails.
async function journey(onPage) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run",
    ],
  });
  const page = await browser.newPage();
  // The CSP forbids inline script: a violation would show up here.
  const consoleErrors = [];
  // Refused form posts (422) and the browser's own favicon request (404) are logged as
  // failed loads; those are expected. Anything else (a CSP violation, a script error) is not.
  page.on("console", (message) => {
    const text = message.text();
    if (message.type() === "error" && !text.startsWith("Failed to load resource")) {
      consoleErrors.push(text);
    }
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  let shot = 0;
  const snap = async (name) => {
    shot += 1;
    const file = path.join(screenshotDir, `${String(shot).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
  };
  const text = async () => page.locator("main").innerText();
  onPage(async () => {
    await page.screenshot({ path: path.join(screenshotDir, "failed.png"), fullPage: true });
    console.error(`failed on ${page.url()}; screenshot failed.png`);
  });

  // 1. Sign in at the OpenID Connect provider from the start page: the hub sends the
  //    browser there; its sign-in form takes the owner's e-mail as the login (any
  //    password), its consent page approves the hub, and the hub checks state, nonce and
  //    the ID token before opening a session.
  await page.goto(hubUrl + "/");
  await snap("welcome");
  const providerLink = page.getByRole("link", { name: /^Sign in with / });
  await providerLink.click();
  await page.waitForURL((url) => url.href.startsWith(oidcIssuer));
  await page.locator('input[name="login"]').fill(owner);
  await page.locator('input[name="password"]').fill("any password");
  await snap("provider-sign-in");
  await page.getByRole("button", { name: "Sign-in" }).click();
  await page.getByRole("button", { name: "Continue" }).waitFor();
  await snap("provider-consent");
  await page.getByRole("button", { name: "Continue" }).click();
  await page.waitForURL(hubUrl + "/");
  expect((await text()).includes("Your nodes and channels"), "signed in to the home page");
  expect((await page.locator("header").innerText()).includes(owner), "signed in as the owner");
  await snap("home");

  // 2. Register the node from the link the node printed: every check passes, Confirm.
  await page.goto(registerLink);
  const checks = await page.locator("ul.checks li").allInnerTexts();
  expect(checks.length === 5 && checks.every((line) => line.startsWith("passed")),
    `every registration check passes: ${checks.join(" | ")}`);
  await snap("register");
  await page.getByRole("button", { name: "Confirm registration" }).click();
  await page.waitForURL(`${hubUrl}/nodes/${nodeId}`);
  await snap("node-registered");

  // 3. A form error is shown beside its field, and summarised.
  await page.goto(hubUrl + "/channels/new");
  await page.getByLabel("Name").fill("x");
  await page.getByRole("button", { name: "Create channel" }).click();
  expect(await page.locator("#name-error").isVisible(), "the name error sits beside the field");
  expect(await page.getByRole("alert").isVisible(), "errors are summarised in an alert");
  expect((await page.getByLabel("Name").getAttribute("aria-invalid")) === "true", "the field is marked invalid");
  await snap("form-error");

  // 4. Create the channel.
  await page.getByLabel("Name").fill(channel);
  await page.getByRole("button", { name: "Create channel" }).click();
  await page.waitForURL(`${hubUrl}/channels/${channel}`);
  await snap("channel-created");

  // 5. Join it with the node, requesting provideFiles on top of the preselected roles.
  await page.goto(`${hubUrl}/channels/join?node=${nodeId}`);
  await page.getByLabel("Channel").fill(channel);
  await page.getByLabel("Provide files").check();
  await snap("join");
  await page.getByRole("button", { name: "Join" }).click();
  await page.waitForURL(`${hubUrl}/nodes/${nodeId}`);
  let row = page.locator("tbody tr", { hasText: channel }).first();
  expect((await row.innerText()).includes("none"), "nothing is effective before a grant");
  await snap("joined");

  // 6. Grant requestFiles as the channel's owner; the member row has a checkbox per role.
  await page.goto(`${hubUrl}/channels/${channel}`);
  const memberForm = page.locator("#members ~ table form").first();
  await memberForm.getByLabel("Request files").check();
  await snap("grant");
  await memberForm.getByRole("button", { name: "Save grant" }).click();
  await page.waitForURL(`${hubUrl}/channels/${channel}#members`);

  // 7. The node page shows requested, granted and effective roles side by side.
  await page.goto(`${hubUrl}/nodes/${nodeId}`);
  row = page.locator("tbody tr", { hasText: channel }).first();
  const cells = await row.locator("td").allInnerTexts();
  expect(cells[2].trim() === "requestFiles", `granted is requestFiles: ${cells}`);
  expect(cells[4].trim() === "requestFiles", `effective is requestFiles: ${cells}`);
  await snap("effective");

  // 8. Mint a passcode giving provideFiles; it is shown once.
  await page.goto(`${hubUrl}/channels/${channel}`);
  const mintForm = page.locator("form", { has: page.getByRole("button", { name: "Create passcode" }) });
  await mintForm.getByLabel("Prefix").fill("journey");
  for (const label of ["Request files", "Request feeds", "Request tasks"]) {
    await mintForm.getByLabel(label).uncheck();
  }
  await mintForm.getByLabel("Provide files").check();
  await mintForm.getByLabel("Uses").fill("1");
  await mintForm.getByRole("button", { name: "Create passcode" }).click();
  const passcode = (await page.locator("#minted-code").innerText()).trim();
  expect(/^journey-[0-9A-Z]{26}$/.test(passcode), `a passcode is shown: ${passcode}`);
  await snap("passcode-minted");

  // 9. Enter it on the node's membership: provideFiles becomes effective too.
  await page.goto(`${hubUrl}/nodes/${nodeId}`);
  await page.getByLabel(`Passcode for ${channel}`).fill(passcode);
  await page.getByRole("button", { name: "Enter passcode" }).click();
  await page.waitForURL(`${hubUrl}/nodes/${nodeId}`);
  row = page.locator("tbody tr", { hasText: channel }).first();
  const after = await row.locator("td").allInnerTexts();
  expect(after[3].trim() === "provideFiles", `passcode roles are provideFiles: ${after}`);
  expect(after[4].trim() === "requestFiles, provideFiles", `effective adds provideFiles: ${after}`);
  await snap("passcode-used");

  // 10. Test the channel: every step of both halves passes.
  await page.goto(`${hubUrl}/channels/${channel}`);
  await page.getByRole("button", { name: "Test channel" }).click();
  const results = page.locator("#test-results");
  await results.waitFor();
  const resultText = await results.innerText();
  expect(!resultText.includes("failed"), `the channel test passes: ${resultText}`);
  expect((resultText.match(/passed/g) || []).length === 2, "both halves passed");
  await snap("channel-test");

  // 11. Sign out: back to the welcome page, and the node page now asks to sign in.
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(hubUrl + "/");
  expect(await providerLink.isVisible(), "signed out: the sign-in link is back");
  await snap("signed-out");
  await page.goto(`${hubUrl}/nodes/${nodeId}`);
  expect(page.url().includes("/login"), `a signed-out visit is sent to sign in: ${page.url()}`);

  await browser.close();
  expect(consoleErrors.length === 0, `no console errors: ${consoleErrors.join(" | ")}`);
  console.log(JSON.stringify({ ok: true, passcodeHint: passcode.slice(-4), screenshots: shot }));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
