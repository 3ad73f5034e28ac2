// The peer for ./bench/run: panva's oidc-provider (npm, pinned in package.json) configured like the
// idbroker under test. Based on shared/peer-reference/provider.mjs (svc1, resource servers, ES256 JWTs,
// introspection), plus what the login / refresh / userinfo benchmarks need:
//   - web1: confidential (client_secret_basic) code + PKCE client with refresh tokens, ID tokens ES256;
//   - refresh tokens rotate on every use (rotateRefreshToken: true), like idbroker;
//   - web1 is first-party: a grant for its scopes is created at login, so there is no consent page
//     (idbroker: `clients add --first-party`);
//   - oidc-provider drops offline_access unless prompt=consent is sent; idbroker does not need that for a
//     first-party client, so issueRefreshToken issues one to every client allowed the refresh_token grant
//     and refresh tokens do not end with the browser session (same outcome as idbroker's offline_access);
//   - devInteractions (DEV_INTERACTIONS=1): the stock login form; it accepts any password and hashes none;
//   - userinfo (on by default) releases sub, email, email_verified for scope "openid email".
// Alone: one process, default in-memory adapter, keys generated at start-up.
//   PORT=3100 NODE_ENV=production DEV_INTERACTIONS=1 node provider.mjs
// Clustered (as deployed): `node cluster.mjs` forks workers = cores running this file, with the keys in
// PEER_JWKS (one key set for all workers) and ADAPTER=redis (redis_adapter.mjs, shared store).
import Provider, { errors } from 'oidc-provider';
import { makeJwks } from './keys.mjs';

const port = Number(process.env.PORT ?? 3100);
const dev = process.env.DEV_INTERACTIONS === '1';
const svc1Secret = process.env.SVC1_SECRET ?? 'svc1-secret';
const web1Secret = process.env.WEB1_SECRET ?? 'web1-secret';
const redirectUri = process.env.WEB1_REDIRECT_URI ?? 'http://127.0.0.1:8080/cb';

const jwks = process.env.PEER_JWKS ? JSON.parse(process.env.PEER_JWKS) : makeJwks();
const adapter = process.env.ADAPTER === 'redis' ? (await import('./redis_adapter.mjs')).default : undefined;

// Resource servers (RFC 8707 resource indicators) -> access token format per audience.
const RS = {
  'https://api.example.com/jwt': { scope: 'api:read api:write', accessTokenFormat: 'jwt', jwt: { sign: { alg: 'ES256' } } },
  'https://api.example.com/opaque': { scope: 'api:read api:write', accessTokenFormat: 'opaque' },
};

const WEB1_SCOPE = 'openid email profile offline_access';
// The account is whatever login the dev form was given; its address is that login when it is one (as
// an upstream provider of idbroker's federated sign-in row, each virtual user is then its own account).
const ACCOUNT = (sub) => ({
  accountId: sub,
  claims: async () => ({ sub, email: sub.includes('@') ? sub : 'bench@example.com', email_verified: true }),
});

const oidc = new Provider(`http://127.0.0.1:${port}`, {
  jwks,
  ...(adapter ? { adapter } : {}),
  cookies: { keys: ['peerbench-cookie-key-0123456789abcdef'] },
  clients: [
    { // machine-to-machine client
      client_id: 'svc1', client_secret: svc1Secret, token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'api:read api:write',
      id_token_signed_response_alg: 'ES256',
    },
    { // first-party web application: code + PKCE, refresh tokens
      client_id: 'web1', client_secret: web1Secret, token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: [redirectUri],
      id_token_signed_response_alg: 'ES256',
    },
  ],
  scopes: ['openid', 'offline_access', 'email', 'profile', 'api:read', 'api:write'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: [] },
  findAccount: async (ctx, sub) => ACCOUNT(sub),
  pkce: { required: () => true },
  ttl: {
    AccessToken: 3600, ClientCredentials: 3600, AuthorizationCode: 60, IdToken: 3600,
    RefreshToken: 30 * 86400, Interaction: 900, Session: 14 * 86400, Grant: 30 * 86400,
  },
  rotateRefreshToken: true,
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  expiresWithSession: async () => false,
  loadExistingGrant: async (ctx) => {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    if (ctx.oidc.client.clientId !== 'web1') return undefined;
    const grant = new ctx.oidc.provider.Grant({ clientId: 'web1', accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope(WEB1_SCOPE);
    await grant.save();
    return grant;
  },
  features: {
    devInteractions: { enabled: dev },
    clientCredentials: { enabled: true },
    introspection: { enabled: true, allowedPolicy: async () => true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (ctx, client, oneOf) => oneOf ?? undefined,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (ctx, resource) => {
        const rs = RS[resource];
        if (!rs) throw new errors.InvalidTarget();
        return { ...rs, audience: resource, accessTokenTTL: 3600 };
      },
    },
  },
});

oidc.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${oidc.issuer} pid=${process.pid} devInteractions=${dev} `
    + `NODE_ENV=${process.env.NODE_ENV} adapter=${adapter ? 'redis' : 'memory'}`);
});
