// Server side of the WebSocket idle-memory measurement (bench/websocket.ts), a fresh process
// per run. Plain JavaScript run by `node --expose-gc`:
//
//   node --expose-gc bench/websocket-idle-server.mjs trews|ws
//
// Both echo messages: `trews` is a WebSocketServer + WebSocketConnection from the built
// package (dist/websocket/index.js), `ws` a plain ws WebSocketServer (its defaults: client
// tracking on, permessage-deflate off). Prints {"port"} once listening; each stdin line
// "measure" prints {"connections","rss","heapUsed","external"} after full GCs.
import { WebSocketServer as WsServer } from 'ws';
import { reportMemory } from './idle-report.mjs';

const [kind] = process.argv.slice(2);
if (globalThis.gc === undefined) throw new Error('websocket-idle-server: run with --expose-gc');

let port;
let connections;
if (kind === 'trews') {
  const { WebSocketConnection, WebSocketServer } = await import('../dist/websocket/index.js');
  class Echo extends WebSocketConnection {
    onRead(message) {
      this.write(message);
    }
  }
  const server = new WebSocketServer(Echo);
  await server.listen(['127.0.0.1', 0], { backlog: 4096 });
  port = server.localAddress.port;
  connections = () => server.connections.size;
} else if (kind === 'ws') {
  const server = new WsServer({ host: '127.0.0.1', port: 0, backlog: 4096 });
  server.on('connection', (socket) => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    socket.on('error', () => {});
  });
  await new Promise((resolve) => server.once('listening', resolve));
  port = server.address().port;
  connections = () => server.clients.size;
} else {
  throw new Error(`websocket-idle-server: unknown kind ${kind} (trews or ws)`);
}

reportMemory(port, connections, ['rss', 'heapUsed', 'external']);
