// The peer's signing keys (ES256 + RS256), generated at start-up. The cluster launcher makes one set and
// hands it to every worker (PEER_JWKS), so every worker signs and verifies with the same keys.
import { generateKeyPairSync } from 'node:crypto';

const jwk = (kp, extra) => ({ ...kp.privateKey.export({ format: 'jwk' }), use: 'sig', ...extra });

export const makeJwks = () => ({
  keys: [
    jwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }), { kid: 'es256-1', alg: 'ES256' }),
    jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }), { kid: 'rs256-1', alg: 'RS256' }),
  ],
});
