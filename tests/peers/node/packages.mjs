// The npm packages the peer scripts drive (openid-client, oidc-provider), imported from the test
// node_modules: IDBROKER_TEST_NODE_MODULES, else the one beside these scripts. ESM ignores
// NODE_PATH, so a package is resolved there first, then imported as ESM.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const modulesDir = process.env.IDBROKER_TEST_NODE_MODULES || join(here, 'node_modules');
const resolveFrom = createRequire(join(modulesDir, '..', 'peer-resolver.cjs'));

export function importPackage(name) {
  return import(pathToFileURL(resolveFrom.resolve(name)).href);
}
