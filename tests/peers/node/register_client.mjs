#!/usr/bin/env node
// Dynamic client registration (RFC 7591 / OIDC Registration) with panva's openid-client v6:
// `dynamicClientRegistration` discovers the broker, POSTs the metadata to its
// registration_endpoint (with an initial access token when RP_INITIAL_ACCESS_TOKEN is set) and
// returns a Configuration. Prints a JSON summary on stdout: the discovered registration_endpoint
// and the client metadata openid-client kept. Exits non-zero with the error on stderr.
//
//   RP_ISSUER, RP_REDIRECT_URI, RP_POST_LOGOUT_REDIRECT_URI, RP_INITIAL_ACCESS_TOKEN (optional)
//   IDBROKER_TEST_NODE_MODULES   where openid-client is installed (default: ./node_modules)

import { importPackage } from './packages.mjs';

const client = await importPackage('openid-client');

const env = process.env;
try {
  const options = { execute: [client.allowInsecureRequests] };  // http issuer: a local test
  if (env.RP_INITIAL_ACCESS_TOKEN) options.initialAccessToken = env.RP_INITIAL_ACCESS_TOKEN;
  const config = await client.dynamicClientRegistration(new URL(env.RP_ISSUER), {
    client_name: 'openid-client peer',
    redirect_uris: [env.RP_REDIRECT_URI],
    post_logout_redirect_uris: [env.RP_POST_LOGOUT_REDIRECT_URI],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'openid profile email offline_access',
  }, undefined, options);
  const server = config.serverMetadata();
  process.stdout.write(JSON.stringify({
    registration_endpoint: server.registration_endpoint,
    client: config.clientMetadata(),
  }));
} catch (err) {
  process.stderr.write(`registration failed: ${err?.name} ${err?.code ?? ''} ${err?.message}\n`);
  if (err?.cause) process.stderr.write(`cause: ${JSON.stringify(err.cause)}\n`);
  process.exit(1);
}
