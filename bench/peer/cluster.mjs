// The peer as it is deployed: Node's cluster module, WORKERS (default: cores) processes running
// provider.mjs behind one listening port, all on the Redis adapter (redis_adapter.mjs) so that any
// worker finds what another stored. The primary makes one key set for all workers and empties the
// Redis DB index first (REDIS_URL, default redis://127.0.0.1:6379/7: a DB of the bench's own).
//   PORT=3100 NODE_ENV=production DEV_INTERACTIONS=1 WORKERS=2 node cluster.mjs
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import Redis from 'ioredis';
import { makeJwks } from './keys.mjs';

const workers = Number(process.env.WORKERS || availableParallelism());
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/7';

const redis = new Redis(redisUrl);
await redis.flushdb();
await redis.quit();

cluster.setupPrimary({ exec: new URL('./provider.mjs', import.meta.url).pathname });
const env = { ADAPTER: 'redis', REDIS_URL: redisUrl, PEER_JWKS: JSON.stringify(makeJwks()) };
let stopping = false;
for (let i = 0; i < workers; i += 1) cluster.fork(env);
cluster.on('exit', (worker, code, signal) => {
  if (!stopping) {
    console.error(`worker ${worker.process.pid} exited (${signal ?? code}); stopping the cluster`);
    process.exit(1);
  }
});
const stop = () => {
  stopping = true;
  for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
console.log(`oidc-provider cluster: primary ${process.pid}, ${workers} workers, Redis ${redisUrl}`);
