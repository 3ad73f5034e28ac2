#!/usr/bin/env node
// panva's oidc-provider as a REAL upstream identity provider for idbroker's "oidc" kind.
//
// Dev interactions (any login, any password; consent with one button), one confidential client
// registered for idbroker's callback, PKCE required, one signing key generated at start with the
// given kid (restart with another KID to rotate the key). The account's profile claims are only
// released by userinfo (the ID token carries sub, nonce, amr...), so the caller must merge both;
// the session's amr is set to ["pwd", "mfa"] so that it reaches the ID token.
//
// Environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, KID (default k1),
//   CLIENT_JWKS (a public JWKS: then "<CLIENT_ID>-pkjwt" is registered too, authenticating with
//   private_key_jwt),
//   IDBROKER_TEST_NODE_MODULES (where oidc-provider is installed; default ./node_modules).
// Prints "listening <issuer>" on stdout once it accepts connections.

import { generateKeyPairSync } from 'node:crypto';
import { importPackage } from './packages.mjs';

const { default: Provider } = await importPackage('oidc-provider');

const port = Number(process.env.PORT);
const kid = process.env.KID || 'k1';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });

const ACCOUNT = {
  email: 'alice@upstream.test', email_verified: true, name: 'Alice Upstream',
  given_name: 'Alice', family_name: 'Upstream', roles: ['staff', 'admins'],
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' }] },
  cookies: { keys: ['upstream-test-cookie-key-0123456789'] },
  clients: [{
    client_id: process.env.CLIENT_ID, client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI], grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }, ...(process.env.CLIENT_JWKS ? [{
    client_id: `${process.env.CLIENT_ID}-pkjwt`, jwks: JSON.parse(process.env.CLIENT_JWKS),
    redirect_uris: [process.env.REDIRECT_URI], grant_types: ['authorization_code'], response_types: ['code'],
    token_endpoint_auth_method: 'private_key_jwt',
  }] : [])],
  claims: { openid: ['sub', 'amr'], email: ['email', 'email_verified'], profile: ['name', 'given_name', 'family_name'],
            roles: ['roles'] },
  scopes: ['openid', 'email', 'profile', 'roles'],
  findAccount: async (ctx, sub) => ({ accountId: sub, claims: async () => ({ sub, ...ACCOUNT }) }),
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
});

// The dev login form sets only the account id; add the authentication methods of this "session".
const finished = provider.interactionFinished.bind(provider);
provider.interactionFinished = (req, res, result, options) => {
  if (result.login) result.login.amr = ['pwd', 'mfa'];
  return finished(req, res, result, options);
};

provider.listen(port, '127.0.0.1', () => console.log(`listening ${provider.issuer}`));
