// Writes docs/configuration.md from the config schema (`npm run docs:config`).
import { writeFileSync } from 'node:fs';
import { referenceMarkdown } from '../core/config/reference.js';

writeFileSync(new URL('../docs/configuration.md', import.meta.url), referenceMarkdown());
