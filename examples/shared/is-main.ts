/** True when the module at `url` (pass `import.meta.url`) is the program being run, not an import. */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

export function isMain(url: string): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return url === pathToFileURL(realpathSync(script)).href;
  } catch {
    return false;
  }
}
