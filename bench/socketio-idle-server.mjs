// Server side of the Socket.IO idle-memory measurement (bench/socketio.ts), a fresh process
// per run. Plain JavaScript run by `node --expose-gc`:
//
//   node --expose-gc bench/socketio-idle-server.mjs trews|socket.io
//
// Both serve an echo event: `trews` is a SocketIOServer + SocketConnection from the built
// package (dist/socket.io/index.js), `socket.io` the official server (its defaults). Prints
// {"port"} once listening; each stdin line "measure" prints
// {"connections","rss","heapUsed","external","youngGeneration"} after full GCs.
import { createServer } from 'node:http';
import { reportMemory } from './idle-report.mjs';

const [kind] = process.argv.slice(2);
if (globalThis.gc === undefined) throw new Error('socketio-idle-server: run with --expose-gc');

let port;
let connections;
if (kind === 'trews') {
  const { SocketConnection, SocketIOServer } = await import('../dist/socket.io/index.js');
  class Echo extends SocketConnection {
    static events = {
      echo(text) {
        this.emit('echo', text);
      },
    };
  }
  const server = new SocketIOServer(Echo);
  await server.listen(['127.0.0.1', 0]);
  port = server.localAddress.port;
  connections = () => server.of('/').connections.size;
} else if (kind === 'socket.io') {
  const { Server } = await import('socket.io');
  const http = createServer();
  const io = new Server(http);
  io.on('connection', (socket) => socket.on('echo', (text) => socket.emit('echo', text)));
  await new Promise((resolve) => http.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, resolve));
  port = http.address().port;
  connections = () => io.of('/').sockets.size;
} else {
  throw new Error(`socketio-idle-server: unknown kind ${kind} (trews or socket.io)`);
}

reportMemory(port, connections, ['rss', 'heapUsed', 'external', 'youngGeneration']);
