#!/usr/bin/env node
// An OpenID-certified relying party (panva's openid-client v6) against a running idbroker.
//
// Discovery, authorization code + PKCE through the real login (and consent) pages, ID token
// validation (signature, alg, iss, aud, nonce, ...), userinfo, refresh-token rotation, reuse
// detection, revocation + introspection, optional SSO into a second client, and RP-initiated
// logout. The "browser" is fetch with redirect: 'manual' and a tiny cookie jar.
//
// Every check failing exits non-zero with a message on stderr. On success a JSON summary is
// printed on stdout (the only thing printed there).
//
// Configuration: environment variables, or the same names as --flags (--issuer=..., --client-id ...).
//   RP_ISSUER                    issuer URL (http allowed: this is a local test)
//   RP_CLIENT_ID, RP_CLIENT_SECRET
//   RP_REDIRECT_URI              registered redirect URI (never fetched)
//   RP_POST_LOGOUT_REDIRECT_URI  registered post-logout redirect URI (never fetched)
//   RP_USERNAME, RP_PASSWORD     the user who signs in on the login page
//   RP_ID_TOKEN_ALG              expected ID token "alg" (ES256 or RS256; default ES256)
//   RP_SCOPE                     default "openid profile email offline_access"
//   RP_SSO_CLIENT_ID, RP_SSO_CLIENT_SECRET, RP_SSO_REDIRECT_URI, RP_SSO_ID_TOKEN_ALG
//                                optional second client signed into in the same browser session
//                                before logout (single sign-on; back-channel logout is checked
//                                by the caller)
//   IDBROKER_TEST_NODE_MODULES   where openid-client is installed (default: ./node_modules)

import { importPackage } from './packages.mjs';

const client = await importPackage('openid-client');

// ------------------------------------------------------------------------------------ config
const OPTIONS = {
  issuer: 'RP_ISSUER',
  'client-id': 'RP_CLIENT_ID',
  'client-secret': 'RP_CLIENT_SECRET',
  'redirect-uri': 'RP_REDIRECT_URI',
  'post-logout-redirect-uri': 'RP_POST_LOGOUT_REDIRECT_URI',
  username: 'RP_USERNAME',
  password: 'RP_PASSWORD',
  'id-token-alg': 'RP_ID_TOKEN_ALG',
  scope: 'RP_SCOPE',
  'sso-client-id': 'RP_SSO_CLIENT_ID',
  'sso-client-secret': 'RP_SSO_CLIENT_SECRET',
  'sso-redirect-uri': 'RP_SSO_REDIRECT_URI',
  'sso-id-token-alg': 'RP_SSO_ID_TOKEN_ALG',
};
const REQUIRED = ['issuer', 'client-id', 'client-secret', 'redirect-uri', 'post-logout-redirect-uri',
  'username', 'password'];

function loadConfig(argv, env) {
  const cfg = {};
  for (const [flag, name] of Object.entries(OPTIONS)) {
    if (env[name]) cfg[flag] = env[name];
  }
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(argv[i]);
    if (!m || !(m[1] in OPTIONS)) throw new Failure(`unknown argument ${argv[i]}`);
    if (m[2] !== undefined) {
      cfg[m[1]] = m[2];
    } else {
      if (i + 1 >= argv.length) throw new Failure(`--${m[1]} needs a value`);
      cfg[m[1]] = argv[++i];
    }
  }
  const missing = REQUIRED.filter((k) => !cfg[k]);
  if (missing.length) {
    throw new Failure(`missing configuration: ${missing.map((k) => `--${k} / ${OPTIONS[k]}`).join(', ')}`);
  }
  cfg['id-token-alg'] ??= 'ES256';
  cfg.scope ??= 'openid profile email offline_access';
  if (cfg['sso-client-id'] && !(cfg['sso-client-secret'] && cfg['sso-redirect-uri'])) {
    throw new Failure('--sso-client-id needs --sso-client-secret and --sso-redirect-uri');
  }
  cfg['sso-id-token-alg'] ??= 'ES256';
  return cfg;
}

// ------------------------------------------------------------------------------------ checks
class Failure extends Error {
  constructor(message, details) {
    super(message);
    this.details = details;
  }
}

function check(condition, message, details) {
  if (!condition) throw new Failure(message, details);
}

/** Runs fn, which must fail with an OAuth error response; returns that error code. */
async function expectOAuthError(what, fn) {
  try {
    const result = await fn();
    throw new Failure(`${what}: expected an OAuth error, got success`, result);
  } catch (err) {
    if (err instanceof Failure) throw err;
    if (err instanceof client.ResponseBodyError || err instanceof client.AuthorizationResponseError) {
      return { error: err.error, error_description: err.error_description ?? null,
        status: err.status ?? null };
    }
    throw new Failure(`${what}: expected an OAuth error response, got ${err?.name}: ${err?.message}`,
      describeError(err));
  }
}

function describeError(err) {
  if (!err || typeof err !== 'object') return err;
  const out = { name: err.name, message: err.message };
  for (const key of ['code', 'error', 'error_description', 'status']) {
    if (err[key] !== undefined) out[key] = err[key];
  }
  if (err.cause !== undefined) {
    out.cause = err.cause instanceof Error ? describeError(err.cause) : err.cause;
  }
  return out;
}

function jwtHeader(token) {
  return JSON.parse(Buffer.from(token.split('.')[0], 'base64url').toString('utf8'));
}

// ----------------------------------------------------------------------------------- browser
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_STEPS = 20;

function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos|#39);/gi, (_, e) => {
    const lower = e.toLowerCase();
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16));
    if (lower.startsWith('#')) return String.fromCodePoint(parseInt(lower.slice(1), 10));
    return { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" }[lower];
  });
}

function parseAttributes(source) {
  const attrs = {};
  const re = /([^\s"'=<>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  for (const m of source.matchAll(re)) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

function parseForms(html) {
  const forms = [];
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = parseAttributes(m[1]);
    const controls = [...m[2].matchAll(/<(input|button)\b([^>]*)>/gi)]
      .map((c) => ({ tag: c[1].toLowerCase(), ...parseAttributes(c[2]) }));
    forms.push({ action: attrs.action ?? '', method: (attrs.method ?? 'get').toLowerCase(), controls });
  }
  return forms;
}

function hiddenFields(form) {
  const fields = {};
  for (const c of form.controls) {
    if (c.tag === 'input' && c.type === 'hidden' && c.name) fields[c.name] = c.value ?? '';
  }
  return fields;
}

function pageTitle(html) {
  const title = /<title>([\s\S]*?)<\/title>/i.exec(html)?.[1]?.trim() ?? '';
  const alert = /<p class="error"[^>]*>([\s\S]*?)<\/p>/i.exec(html)?.[1]?.trim();
  return decodeEntities(alert ? `${title}: ${alert}` : title);
}

/** A user agent for one origin (the broker): keeps its cookies, never follows redirects by itself. */
class Browser {
  constructor(origin) {
    this.origin = origin;
    this.cookies = new Map(); // name -> { value, attributes }
    this.trail = [];
  }

  storeCookies(response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...rest] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const attributes = {};
      for (const part of rest) {
        const [k, ...v] = part.split('=');
        attributes[k.trim().toLowerCase()] = v.join('=').trim();
      }
      const maxAge = attributes['max-age'] !== undefined ? Number(attributes['max-age']) : undefined;
      const expires = attributes.expires ? Date.parse(attributes.expires) : undefined;
      if ((maxAge !== undefined && maxAge <= 0) || (expires !== undefined && expires <= Date.now())) {
        this.cookies.delete(name);
      } else {
        this.cookies.set(name, { value, attributes });
      }
    }
  }

  cookieHeader() {
    return [...this.cookies].map(([name, c]) => `${name}=${c.value}`).join('; ');
  }

  async request(url, { method = 'GET', form } = {}) {
    url = new URL(url);
    check(url.origin === this.origin, `the browser only talks to the broker, not ${url.origin}`);
    const headers = { 'user-agent': 'idbroker-peer-test (openid-client)', accept: 'text/html' };
    const cookie = this.cookieHeader();
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers.origin = this.origin;
    }
    const response = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.storeCookies(response);
    this.trail.push(`${method} ${url.pathname} -> ${response.status}`);
    return response;
  }

  /**
   * Opens url and walks the broker's pages like a user would: follows redirects on the broker,
   * signs in on the login page, allows on the consent page. Stops at the first redirect that
   * leaves the broker and returns it, with the pages passed on the way.
   */
  async navigate(url, { username, password }) {
    const pages = [];
    let current = new URL(url);
    let response = await this.request(current);
    for (let step = 0; step < MAX_STEPS; step++) {
      if (REDIRECTS.has(response.status)) {
        const location = response.headers.get('location');
        check(location, `redirect without Location from ${current.pathname}`);
        const next = new URL(location, current);
        if (next.origin !== this.origin) return { location: next, pages };
        current = next;
        response = await this.request(current);
        continue;
      }
      const html = await response.text();
      check(response.status === 200,
        `unexpected ${response.status} from ${current.pathname}: ${pageTitle(html) || html.slice(0, 300)}`,
        { trail: this.trail });
      const forms = parseForms(html);
      const login = forms.find((f) => f.method === 'post' && new URL(f.action, current).pathname === '/login'
        && f.controls.some((c) => c.name === 'password'));
      const consent = forms.find((f) => f.method === 'post'
        && new URL(f.action, current).pathname === '/consent');
      if (login) {
        check(!pages.includes('login'), `the login page came back after signing in: ${pageTitle(html)}`,
          { trail: this.trail });
        pages.push('login');
        const fields = hiddenFields(login);
        check(fields.csrf_token && fields.interaction, 'login form lacks csrf_token or interaction', fields);
        check(login.controls.some((c) => c.name === 'username'), 'login form lacks a username input');
        current = new URL(login.action, current);
        response = await this.request(current, { method: 'POST', form: { ...fields, username, password } });
      } else if (consent) {
        check(!pages.includes('consent'), 'the consent page came back after allowing', { trail: this.trail });
        pages.push('consent');
        const fields = hiddenFields(consent);
        check(fields.csrf_token && fields.interaction, 'consent form lacks csrf_token or interaction', fields);
        check(consent.controls.some((c) => c.name === 'decision' && c.value === 'allow'),
          'consent form has no decision=allow button');
        current = new URL(consent.action, current);
        response = await this.request(current, { method: 'POST', form: { ...fields, decision: 'allow' } });
      } else {
        throw new Failure(`unexpected page at ${current.pathname}: ${pageTitle(html)}`, { trail: this.trail });
      }
    }
    throw new Failure(`no response for the client after ${MAX_STEPS} steps`, { trail: this.trail });
  }
}

// ------------------------------------------------------------------------------------ the RP
async function configure(issuer, clientId, clientSecret, alg) {
  // client_secret_basic is the broker's default for confidential clients (openid-client defaults
  // to client_secret_post). Pinning id_token_signed_response_alg makes the library reject an ID
  // token signed with any other algorithm. Non-repudiation checks verify every ID token's
  // signature against the discovered jwks_uri.
  return client.discovery(new URL(issuer), clientId,
    { client_secret: clientSecret, id_token_signed_response_alg: alg },
    client.ClientSecretBasic(clientSecret),
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] });
}

/** Code + PKCE + nonce + state through the browser; returns the validated token response. */
async function signIn(browser, config, { redirectUri, scope, username, password, alg }) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const codeChallenge = await client.calculatePKCECodeChallenge(codeVerifier);
  const nonce = client.randomNonce();
  const state = client.randomState();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri, scope, nonce, state,
    code_challenge: codeChallenge, code_challenge_method: 'S256',
  });
  const { location, pages } = await browser.navigate(url, { username, password });
  check(location.href.startsWith(redirectUri), `authorization ended at ${location.href}, not ${redirectUri}`);
  check(location.searchParams.get('iss') === config.serverMetadata().issuer,
    'authorization response lacks iss (RFC 9207)', location.href);
  const tokens = await client.authorizationCodeGrant(config, location, {
    pkceCodeVerifier: codeVerifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true,
  });
  const claims = tokens.claims();
  check(claims, 'no ID token in the token response');
  // openid-client already compared nonce; assert it here too so the summary can say so.
  check(claims.nonce === nonce, 'ID token nonce differs from the request', claims);
  const header = jwtHeader(tokens.id_token);
  check(header.alg === alg, `ID token alg ${header.alg}, expected ${alg}`, header);
  return { tokens, claims, header, pages, nonce };
}

async function run(cfg) {
  const issuer = cfg.issuer;
  const browser = new Browser(new URL(issuer).origin);
  const summary = { issuer };
  const user = { username: cfg.username, password: cfg.password };

  // -- discovery
  const config = await configure(issuer, cfg['client-id'], cfg['client-secret'], cfg['id-token-alg']);
  const meta = config.serverMetadata();
  for (const name of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri',
    'revocation_endpoint', 'introspection_endpoint', 'end_session_endpoint']) {
    check(typeof meta[name] === 'string', `discovery lacks ${name}`, meta);
  }
  check(meta.issuer === issuer, `discovered issuer ${meta.issuer} is not ${issuer}`);
  summary.discovery = {
    issuer: meta.issuer, end_session_endpoint: meta.end_session_endpoint,
    code_challenge_methods_supported: meta.code_challenge_methods_supported,
    id_token_signing_alg_values_supported: meta.id_token_signing_alg_values_supported,
  };
  const flow = { redirectUri: cfg['redirect-uri'], scope: cfg.scope, alg: cfg['id-token-alg'], ...user };

  // -- first sign-in: login page (and consent for a third-party client)
  const first = await signIn(browser, config, flow);
  const sessionCookie = browser.cookies.get('idbroker_session');
  check(sessionCookie, 'no idbroker_session cookie after signing in', [...browser.cookies.keys()]);
  summary.login = { pages: first.pages, trail: [...browser.trail] };
  summary.session_cookie = {
    httponly: 'httponly' in sessionCookie.attributes,
    samesite: sessionCookie.attributes.samesite ?? null,
    path: sessionCookie.attributes.path ?? null,
  };
  summary.id_token = { header: first.header, claims: first.claims, nonce_checked: true,
    expected_nonce: first.nonce };
  check(typeof first.tokens.refresh_token === 'string', 'no refresh token (offline_access was asked)',
    Object.keys(first.tokens));

  // -- userinfo
  const userinfo = await client.fetchUserInfo(config, first.tokens.access_token, first.claims.sub);
  summary.userinfo = userinfo;

  // -- refresh with rotation
  const refreshed = await client.refreshTokenGrant(config, first.tokens.refresh_token);
  const refreshedClaims = refreshed.claims();
  summary.refresh = {
    rotated: typeof refreshed.refresh_token === 'string' && refreshed.refresh_token !== first.tokens.refresh_token,
    new_access_token: refreshed.access_token !== first.tokens.access_token,
    id_token_sub: refreshedClaims?.sub ?? null,
    id_token_alg: refreshed.id_token ? jwtHeader(refreshed.id_token).alg : null,
    // OIDC Core §12.2: a refreshed ID token keeps iss, sub, aud, azp and the original auth_time.
    id_token_keeps_original_claims: refreshedClaims
      ? ['iss', 'sub', 'aud', 'azp', 'auth_time'].every(
        (k) => JSON.stringify(refreshedClaims[k]) === JSON.stringify(first.claims[k]))
      : null,
  };
  check(summary.refresh.rotated, 'refresh did not return a new refresh token', Object.keys(refreshed));
  check(!refreshedClaims || refreshedClaims.sub === first.claims.sub, 'refreshed ID token has another sub');
  const userinfoAfterRefresh = await client.fetchUserInfo(config, refreshed.access_token, first.claims.sub);
  summary.refresh.userinfo_sub = userinfoAfterRefresh.sub;

  // -- reuse detection, on a second sign-in (its own grant) so the first one carries on
  const second = await signIn(browser, config, flow);
  check(!second.pages.includes('login'), 'the second sign-in asked for the password again (no SSO)',
    second.pages);
  const rotatedOnce = await client.refreshTokenGrant(config, second.tokens.refresh_token);
  check(rotatedOnce.refresh_token && rotatedOnce.refresh_token !== second.tokens.refresh_token,
    'second grant: refresh did not rotate');
  const reuse = await expectOAuthError('reusing a rotated refresh token',
    () => client.refreshTokenGrant(config, second.tokens.refresh_token));
  const family = await expectOAuthError('the successor of a reused refresh token',
    () => client.refreshTokenGrant(config, rotatedOnce.refresh_token));
  const familyAccess = await client.tokenIntrospection(config, rotatedOnce.access_token);
  summary.reuse = {
    second_login_pages: second.pages,
    old_token_error: reuse.error,
    family_revoked_error: family.error,
    family_access_token_active: familyAccess.active,
  };
  check(reuse.error === 'invalid_grant', `reused refresh token answered ${reuse.error}`, reuse);
  check(family.error === 'invalid_grant', `successor of a reused refresh token answered ${family.error}`, family);
  check(familyAccess.active === false, 'access token of a revoked family is still active', familyAccess);

  // -- revocation (first grant) seen through introspection
  const rt = refreshed.refresh_token;
  const at = refreshed.access_token;
  const atBefore = await client.tokenIntrospection(config, at, { token_type_hint: 'access_token' });
  check(atBefore.active === true, 'a fresh access token introspects inactive', atBefore);
  check(atBefore.sub === first.claims.sub && atBefore.client_id === cfg['client-id'],
    'access token introspection: wrong sub or client_id', atBefore);
  await client.tokenRevocation(config, at, { token_type_hint: 'access_token' });
  const atAfter = await client.tokenIntrospection(config, at, { token_type_hint: 'access_token' });
  const rtBefore = await client.tokenIntrospection(config, rt, { token_type_hint: 'refresh_token' });
  check(rtBefore.active === true, 'the refresh token should survive revoking an access token', rtBefore);
  await client.tokenRevocation(config, rt, { token_type_hint: 'refresh_token' });
  const rtAfter = await client.tokenIntrospection(config, rt, { token_type_hint: 'refresh_token' });
  const revokedRefresh = await expectOAuthError('refreshing with a revoked refresh token',
    () => client.refreshTokenGrant(config, rt));
  summary.revocation = {
    access_token_active_before: atBefore.active,
    access_token_active_after: atAfter.active,
    refresh_token_active_before: rtBefore.active,
    refresh_token_active_after: rtAfter.active,
    refresh_after_revocation_error: revokedRefresh.error,
  };
  check(atAfter.active === false, 'revoked access token still introspects active', atAfter);
  check(rtAfter.active === false, 'revoked refresh token still introspects active', rtAfter);
  check(revokedRefresh.error === 'invalid_grant', `revoked refresh token answered ${revokedRefresh.error}`);

  // -- single sign-on into a second client (its back-channel logout is checked by the caller)
  if (cfg['sso-client-id']) {
    const ssoConfig = await configure(issuer, cfg['sso-client-id'], cfg['sso-client-secret'],
      cfg['sso-id-token-alg']);
    const sso = await signIn(browser, ssoConfig, { ...flow, redirectUri: cfg['sso-redirect-uri'],
      alg: cfg['sso-id-token-alg'] });
    summary.sso = { client_id: cfg['sso-client-id'], pages: sso.pages, claims: sso.claims };
    check(!sso.pages.includes('login'), 'signing in to the second client asked for the password again',
      sso.pages);
    check(sso.claims.sub === first.claims.sub, 'SSO: another sub', sso.claims);
    check(sso.claims.sid && sso.claims.sid === first.claims.sid, 'SSO: the ID tokens name different sessions',
      { first: first.claims.sid, sso: sso.claims.sid });
  }

  // -- RP-initiated logout with id_token_hint
  const logoutState = client.randomState();
  const endSession = client.buildEndSessionUrl(config, {
    id_token_hint: first.tokens.id_token,
    post_logout_redirect_uri: cfg['post-logout-redirect-uri'],
    state: logoutState,
  });
  const { location: loggedOut, pages: logoutPages } = await browser.navigate(endSession, user);
  const landed = `${loggedOut.origin}${loggedOut.pathname}`;
  summary.logout = {
    end_session_url: endSession.href,
    pages: logoutPages,
    location: loggedOut.href,
    landed_on_post_logout_redirect_uri: landed === cfg['post-logout-redirect-uri'],
    state_returned: loggedOut.searchParams.get('state') === logoutState,
    session_cookie_cleared: !browser.cookies.has('idbroker_session'),
  };
  check(summary.logout.landed_on_post_logout_redirect_uri,
    `logout landed on ${loggedOut.href}, not ${cfg['post-logout-redirect-uri']}`);
  check(summary.logout.state_returned, 'logout redirect lacks the state', loggedOut.href);

  // -- the session is over on the server: prompt=none, even replaying the old session cookie
  browser.cookies.set('idbroker_session', sessionCookie);
  const state = client.randomState();
  const silent = client.buildAuthorizationUrl(config, {
    redirect_uri: cfg['redirect-uri'], scope: 'openid', prompt: 'none', state,
    nonce: client.randomNonce(), code_challenge: await client.calculatePKCECodeChallenge(
      client.randomPKCECodeVerifier()), code_challenge_method: 'S256',
  });
  const { location: silentResult, pages: silentPages } = await browser.navigate(silent, user);
  check(silentPages.length === 0, 'prompt=none showed a page', silentPages);
  check(silentResult.href.startsWith(cfg['redirect-uri']), `prompt=none ended at ${silentResult.href}`);
  const silentError = await expectOAuthError('prompt=none after logout',
    () => client.authorizationCodeGrant(config, silentResult, { expectedState: state }));
  summary.logout.prompt_none_error = silentError.error;
  check(silentError.error === 'login_required', `prompt=none after logout answered ${silentError.error}`,
    silentResult.href);

  summary.trail = browser.trail;
  return summary;
}

try {
  const summary = await run(loadConfig(process.argv.slice(2), process.env));
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
} catch (err) {
  if (err instanceof Failure) {
    process.stderr.write(`rp_flow: FAILED: ${err.message}\n`);
    if (err.details !== undefined) process.stderr.write(`${JSON.stringify(err.details, null, 2)}\n`);
  } else {
    process.stderr.write(`rp_flow: FAILED: openid-client or the HTTP exchange raised ${err?.name}: ${err?.message}\n`);
    process.stderr.write(`${JSON.stringify(describeError(err), null, 2)}\n`);
    const response = err?.response ?? err?.cause?.response;
    if (response instanceof Response && !response.bodyUsed) {
      const body = await response.text().catch(() => '(unreadable)');
      process.stderr.write(`HTTP ${response.status} ${response.url}\n${body.slice(0, 2000)}\n`);
    }
    if (err?.stack) process.stderr.write(`${err.stack}\n`);
  }
  process.exit(1);
}
