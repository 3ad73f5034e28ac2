#!/usr/bin/env node
// panva's openid-client v6 against a running idbroker: JWT-secured authorization responses
// (JARM, useJwtResponseMode): response_mode=jwt (query.jwt for code), the response JWT checked by
// the library (signature from the JWKS, iss, aud, exp, state), the code redeemed; then an error
// (a scope the client may not use) that also comes back as a JARM response.
// Prints a JSON summary on stdout; any failure exits non-zero with the reason on stderr.
//
//   RP_ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET, RP_REDIRECT_URI   a confidential web client
//   RP_USERNAME, RP_PASSWORD                                     who signs in
//   IDBROKER_TEST_NODE_MODULES                                   where openid-client is

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const modulesDir = process.env.IDBROKER_TEST_NODE_MODULES || join(here, 'node_modules');
const resolveFrom = createRequire(join(modulesDir, '..', 'rp_jarm-resolver.cjs'));
const client = await import(pathToFileURL(resolveFrom.resolve('openid-client')).href);

const env = process.env;
const insecure = { execute: [client.allowInsecureRequests] };

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function decode(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|#39);/gi, (_, e) => {
    const l = e.toLowerCase();
    if (l.startsWith('#x')) return String.fromCodePoint(parseInt(l.slice(2), 16));
    if (l.startsWith('#')) return String.fromCodePoint(parseInt(l.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"' }[l];
  });
}

function forms(html) {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map((m) => {
    const action = decode(/action="([^"]*)"/.exec(m[1])?.[1] ?? '');
    const method = (/method="([^"]*)"/.exec(m[1])?.[1] ?? 'get').toLowerCase();
    const hidden = {};
    for (const i of m[2].matchAll(/<input\b[^>]*type="hidden"[^>]*>/gi)) {
      const name = /name="([^"]*)"/.exec(i[0])?.[1];
      if (name) hidden[name] = decode(/value="([^"]*)"/.exec(i[0])?.[1] ?? '');
    }
    return { action, method, hidden, html: m[2] };
  });
}

/** Cookies for the broker's origin; redirects followed by hand; pages answered as a user would. */
class Browser {
  constructor(origin) { this.origin = origin; this.jar = new Map(); this.pages = []; }

  async fetch(url, init = {}) {
    const headers = { ...(init.headers ?? {}) };
    if (this.jar.size) headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const response = await fetch(url, { ...init, headers, redirect: 'manual' });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (/max-age=0/i.test(line) || value === '' || value === '""') this.jar.delete(name); else this.jar.set(name, value);
    }
    return response;
  }

  /** Goes to `url` and answers the pages (login, consent, device confirmation) until it leaves
   * the broker (returns that URL) or lands on a page without anything to answer (returns it). */
  async visit(url) {
    let response = await this.fetch(url);
    for (let step = 0; step < 20; step++) {
      if ([302, 303].includes(response.status)) {
        const next = new URL(response.headers.get('location'), this.origin);
        if (next.origin !== this.origin) return { left: next.href };
        response = await this.fetch(next.href);
        continue;
      }
      const html = await response.text();
      check(response.status === 200, `page ${response.url} answered ${response.status}: ${html.slice(0, 300)}`);
      const all = forms(html);
      const login = all.find((f) => f.action === '/login' && /type="password"/.test(f.html));
      const consent = all.find((f) => f.action === '/consent');
      const device = all.find((f) => f.action === '/device' && f.method === 'post');
      let form; let extra;
      if (login) { form = login; extra = { username: env.RP_USERNAME, password: env.RP_PASSWORD }; this.pages.push('login'); }
      else if (consent) { form = consent; extra = { decision: 'allow' }; this.pages.push('consent'); }
      else if (device) { form = device; extra = { decision: 'allow' }; this.pages.push('device'); }
      else return { html };
      response = await this.fetch(new URL(form.action, this.origin).href, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ ...form.hidden, ...extra }).toString() });
    }
    throw new Error('too many steps');
  }
}

const summary = {};
const issuer = new URL(env.RP_ISSUER);
const browser = new Browser(issuer.origin);

const config = await client.discovery(issuer, env.RP_CLIENT_ID, env.RP_CLIENT_SECRET,
  client.ClientSecretBasic(env.RP_CLIENT_SECRET), insecure);
client.useJwtResponseMode(config);
const meta = config.serverMetadata();
summary.discovery = { modes: meta.response_modes_supported, algs: meta.authorization_signing_alg_values_supported };

const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: env.RP_REDIRECT_URI, scope: 'openid email', state, nonce, response_mode: 'jwt',
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
const back = await browser.visit(authUrl.href);
check(back.left?.startsWith(env.RP_REDIRECT_URI), `the authorization did not come back: ${JSON.stringify(back).slice(0, 300)}`);
const backUrl = new URL(back.left);
summary.returned_params = [...backUrl.searchParams.keys()];
const tokens = await client.authorizationCodeGrant(config, backUrl,
  { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce });
summary.has_sub = Boolean(tokens.claims().sub) && Boolean(tokens.access_token);
summary.pages = [...browser.pages];

// An error in JARM: the library opens the response JWT and raises the authorization error.
const badState = client.randomState();
const badUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: env.RP_REDIRECT_URI, scope: 'openid not-a-scope', state: badState, response_mode: 'jwt',
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' });
const refused = await browser.visit(badUrl.href);
try {
  await client.authorizationCodeGrant(config, new URL(refused.left), { pkceCodeVerifier: verifier, expectedState: badState });
  summary.error = null;
} catch (err) {
  summary.error = err.error ?? err.cause?.error ?? String(err);
}

process.stdout.write(JSON.stringify(summary));
