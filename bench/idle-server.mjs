// Server side of the idle-connections benchmark (bench/idle.ts), a fresh process per run so
// that no run inherits another's heap or RSS. Plain JavaScript run by `node --expose-gc`:
//
//   node --expose-gc bench/idle-server.mjs trews|net [path-to-trews-module]
//
// The trews module defaults to the built package (dist/index.js): what users run. (Through
// tsx, src/ costs more heap per connection than it does built: tsx compiles with esbuild's
// keepNames, which gives every arrow-function class field its own `name` property.)
//
// Both servers echo lines (the client sends one line per connection and then stays idle):
// `trews` is a Server + Connection with readDelimiter '\n'; `net` is node:net with a
// hand-written splitter, TCP_NODELAY and an 'error' handler, keeping its sockets in a Set as
// any real server must. Prints {"port"} once listening; each stdin line "measure" prints
// {"connections","rss","heapTotal","heapUsed","external","arrayBuffers"} after full GCs.
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { reportMemory } from './idle-report.mjs';

const [kind, modulePath] = process.argv.slice(2);
if (globalThis.gc === undefined) throw new Error('idle-server: run with --expose-gc');

let port;
let connections;

if (kind === 'trews') {
  const trews = await import(modulePath ? pathToFileURL(modulePath).href : '../dist/index.js');
  class Echo extends trews.Connection {
    readDelimiter = '\n';
    onRead(line) {
      this.write(line);
      this.write('\n');
    }
  }
  const server = new trews.Server(Echo);
  await server.listen(['127.0.0.1', 0], { backlog: 4096 });
  port = server.localAddress.port;
  connections = () => server.connections.size;
} else if (kind === 'net') {
  const sockets = new Set();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let carry = null;
    socket.on('data', (chunk) => {
      let start = 0;
      let nl = chunk.indexOf(10);
      if (carry !== null && nl !== -1) {
        socket.write(Buffer.concat([carry, chunk.subarray(0, nl + 1)]));
        carry = null;
        start = nl + 1;
        nl = chunk.indexOf(10, start);
      }
      while (nl !== -1) {
        socket.write(chunk.subarray(start, nl + 1));
        start = nl + 1;
        nl = chunk.indexOf(10, start);
      }
      if (start < chunk.length) carry = carry === null ? chunk.subarray(start) : Buffer.concat([carry, chunk.subarray(start)]);
    });
  });
  await new Promise((resolve) => server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, resolve));
  port = server.address().port;
  connections = () => sockets.size;
} else {
  throw new Error(`idle-server: unknown kind ${kind} (trews or net)`);
}

reportMemory(port, connections, ['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers']);
