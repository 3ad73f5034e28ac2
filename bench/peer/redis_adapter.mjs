// oidc-provider storage adapter on Redis (ioredis), written after the library's documented example
// adapter (example/adapters/redis.js in panva/node-oidc-provider): one key per model instance,
// "consumable" models (codes, refresh tokens) as hashes so consume() is one HSET, and a list per grant
// of the keys issued under it so revokeByGrantId() can delete them. Used by the clustered peer:
// every worker process talks to the same Redis, so a refresh token issued by one worker is found,
// consumed and rotated by any other.
//   REDIS_URL=redis://127.0.0.1:6379/7 (a DB index of its own; cluster.mjs flushes it at start)
import Redis from 'ioredis';

const client = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/7', { keyPrefix: 'oidc:' });

// Models whose instances carry a grantId and die with their grant.
const GRANTABLE = new Set(['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest']);
// Models that are marked consumed (one use).
const CONSUMABLE = new Set(['AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest']);

const grantKey = (grantId) => `grant:${grantId}`;
const uidKey = (uid) => `uid:${uid}`;
const userCodeKey = (userCode) => `userCode:${userCode}`;

export default class RedisAdapter {
  constructor(name) {
    this.name = name;
    this.consumable = CONSUMABLE.has(name);
  }

  key(id) {
    return `${this.name}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const tx = client.multi();
    if (this.consumable) {
      tx.hset(key, 'payload', JSON.stringify(payload));
    } else {
      tx.set(key, JSON.stringify(payload));
    }
    if (expiresIn) tx.expire(key, expiresIn);
    if (GRANTABLE.has(this.name) && payload.grantId) {
      const gk = grantKey(payload.grantId);
      tx.rpush(gk, key);
      // the grant's list lives as long as the longest-lived thing in it
      const ttl = await client.ttl(gk);
      if (expiresIn > ttl) tx.expire(gk, expiresIn);
    }
    if (payload.userCode) {
      tx.set(userCodeKey(payload.userCode), id);
      if (expiresIn) tx.expire(userCodeKey(payload.userCode), expiresIn);
    }
    if (payload.uid) {
      tx.set(uidKey(payload.uid), id);
      if (expiresIn) tx.expire(uidKey(payload.uid), expiresIn);
    }
    await tx.exec();
  }

  async find(id) {
    if (this.consumable) {
      const data = await client.hgetall(this.key(id));
      if (!data || !data.payload) return undefined;
      const { payload, ...rest } = data; // rest: { consumed } once consumed
      return { ...rest, ...JSON.parse(payload) };
    }
    const data = await client.get(this.key(id));
    return data ? JSON.parse(data) : undefined;
  }

  async findByUid(uid) {
    const id = await client.get(uidKey(uid));
    return id ? this.find(id) : undefined;
  }

  async findByUserCode(userCode) {
    const id = await client.get(userCodeKey(userCode));
    return id ? this.find(id) : undefined;
  }

  async destroy(id) {
    await client.del(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const gk = grantKey(grantId);
    const keys = await client.lrange(gk, 0, -1); // stored without the client's keyPrefix, as del() wants them
    const tx = client.multi();
    for (const k of keys) tx.del(k);
    tx.del(gk);
    await tx.exec();
  }

  async consume(id) {
    await client.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
  }
}
