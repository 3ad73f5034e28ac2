#!/usr/bin/env node
// panva's openid-client v6 against a running idbroker: pushed authorization requests (RFC 9126)
// with DPoP-bound tokens (RFC 9449: token, userinfo, refresh), and the device authorization
// grant (RFC 8628) with the user code typed on /device by a fetch-driven "browser".
// Prints a JSON summary on stdout; any failure exits non-zero with the reason on stderr.
//
//   RP_ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET, RP_REDIRECT_URI   a confidential web client
//   RP_DEVICE_CLIENT_ID                                          a public device_code client
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

// ------------------------------------------------------------------- PAR + DPoP (web client)
const web = await client.discovery(issuer, env.RP_CLIENT_ID, env.RP_CLIENT_SECRET,
  client.ClientSecretBasic(env.RP_CLIENT_SECRET), insecure);
const meta = web.serverMetadata();
summary.discovery = { par: meta.pushed_authorization_request_endpoint,
  device: meta.device_authorization_endpoint, dpop_algs: meta.dpop_signing_alg_values_supported };
const DPoP = client.getDPoPHandle(web, await client.randomDPoPKeyPair('ES256'));
const verifier = client.randomPKCECodeVerifier();
const state = client.randomState();
const nonce = client.randomNonce();
const authUrl = await client.buildAuthorizationUrlWithPAR(web, {
  redirect_uri: env.RP_REDIRECT_URI, scope: 'openid profile email offline_access', state, nonce,
  code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256' }, { DPoP });
summary.par_request_uri = authUrl.searchParams.get('request_uri');
const back = await browser.visit(authUrl.href);
check(back.left?.startsWith(env.RP_REDIRECT_URI), `the authorization did not come back: ${JSON.stringify(back).slice(0, 300)}`);
const tokens = await client.authorizationCodeGrant(web, new URL(back.left),
  { pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce }, undefined, { DPoP });
const claims = tokens.claims();
summary.token_type = tokens.token_type;
const info = await client.fetchUserInfo(web, tokens.access_token, claims.sub, { DPoP });
summary.userinfo = { sub_matches: info.sub === claims.sub, email: info.email };
const refreshed = await client.refreshTokenGrant(web, tokens.refresh_token, undefined, { DPoP });
summary.refreshed_token_type = refreshed.token_type;
summary.pages = [...browser.pages];

// ------------------------------------------------------------------- device flow (public client)
const tv = await client.discovery(issuer, env.RP_DEVICE_CLIENT_ID, undefined, client.None(), insecure);
const started = await client.initiateDeviceAuthorization(tv, { scope: 'openid profile' });
summary.user_code = started.user_code;
const typed = await browser.visit(started.verification_uri_complete);
summary.device_page_done = /return to your device/i.test(typed.html ?? '');
const deviceTokens = await client.pollDeviceAuthorizationGrant(tv, started);
summary.device = { sub_matches: deviceTokens.claims().sub === claims.sub, token_type: deviceTokens.token_type };
summary.pages_after_device = browser.pages.slice(summary.pages.length);

process.stdout.write(JSON.stringify(summary));
