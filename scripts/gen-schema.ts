/**
 * `npm run schema`: writes docs/gateway.schema.json from the validator's own specs.
 * `npm run schema -- --check` exits 1 when the committed file is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderGatewaySchema, SCHEMA_FILE } from '../src/config/document-schema.ts';

const file = fileURLToPath(new URL(`../${SCHEMA_FILE}`, import.meta.url));
const fresh = renderGatewaySchema();
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // A missing file is simply out of date.
  }
  if (current !== fresh) {
    process.stderr.write(`${SCHEMA_FILE} is out of date: run npm run schema\n`);
    process.exit(1);
  }
  process.stdout.write(`${SCHEMA_FILE}: up to date\n`);
} else {
  writeFileSync(file, fresh);
  process.stdout.write(`wrote ${SCHEMA_FILE}\n`);
}
