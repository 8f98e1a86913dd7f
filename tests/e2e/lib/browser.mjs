// Headless Debian Chromium through playwright-core, launched the one way
// every browser test uses (the flags the project's test rules name).
import { chromium } from 'playwright-core';

export function launchChromium(extraArgs = []) {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', ...extraArgs],
  });
}
