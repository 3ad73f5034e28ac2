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

import { importPackage } from './packages.mjs';

import { Browser, check } from './rp_browser.mjs';

const client = await importPackage('openid-client');

const env = process.env;
const insecure = { execute: [client.allowInsecureRequests] };

const summary = {};
const issuer = new URL(env.RP_ISSUER);
const browser = new Browser(issuer.origin, { username: env.RP_USERNAME, password: env.RP_PASSWORD });

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
