/**
 * A trews line-echo server for the file-descriptor exhaustion case in test/faults.test.ts,
 * run in its own process under a low `ulimit -n`:
 *
 *   bash -c 'ulimit -n 64; exec node --import tsx test/faults/emfile-server.ts'
 *
 * Prints {"port", "pid", "fds"} once listening. Each line on stdin is a command:
 * `status` prints {"connections", "fds", "acceptErrors", "codes"}; stdin closing stops it.
 */
import { readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Connection, Engine, Server } from '../../src/index.js';

let acceptErrors = 0;
const codes = new Set<string>();
const engine = new Engine({
  log(message) {
    const code = /accept failed: (\w+)/.exec(message);
    if (code !== null) {
      acceptErrors++;
      codes.add(code[1]!);
    } else {
      process.stderr.write(`trews: ${message}\n`);
    }
  },
});
engine.on('error', (err) => process.stderr.write(`engine error: ${String(err)}\n`));

class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer): void {
    this.write(line);
    this.write('\n');
  }
}

const server = new Server(Echo, { engine });
await server.listen(['127.0.0.1', 0]);
/** Open descriptors, or -1 when listing them needs one more than the limit allows. */
const fds = (): number => {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return -1;
  }
};
process.stdout.write(JSON.stringify({ port: (server.localAddress as { port: number }).port, pid: process.pid, fds: fds() }) + '\n');

const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  if (line.trim() === 'status') {
    process.stdout.write(JSON.stringify({ connections: server.connections.size, fds: fds(), acceptErrors, codes: [...codes] }) + '\n');
  }
});
commands.on('close', () => {
  void engine.stop().then(() => process.exit(0));
});
