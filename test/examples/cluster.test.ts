/**
 * examples/cluster: the chat on node:cluster workers sharing each listening socket (a trews
 * Server, a WebSocketServer and a SocketIOServer per worker) and one room through a real
 * redis-server. Connections are handed to the workers in turn, so two users land on two
 * workers, and still see each other's lines; Socket.IO is WebSocket-only (no sticky routing).
 */
import { io } from 'socket.io-client';
import { describe, expect, it } from 'vitest';
import { freePort, onCleanup, waitFor } from '../helpers.js';
import { NO_REDIS, RedisServer, hasRedisServer } from '../redis-server.js';
import { joinChat as join, spawnWithTsx, untilFirstLine } from './helpers.js';

if (!hasRedisServer) console.warn(NO_REDIS);

const GREETING = 'Welcome to trews chat! What is your nickname?';


describe.skipIf(!hasRedisServer)('examples/cluster (node:cluster + RedisBus)', () => {
  it('two workers share the ports and the room: TCP users on different workers and a Socket.IO user chat; Ctrl-C stops all', async () => {
    const redis = await RedisServer.start();
    onCleanup(() => redis.stop());
    const [port, webPort, sioPort] = [await freePort(), await freePort(), await freePort()];
    const cluster = spawnWithTsx('examples/cluster/main.ts', { WORKERS: '2', PORT: String(port), WEB_PORT: String(webPort), SIO_PORT: String(sioPort), REDIS_URL: redis.url });
    await untilFirstLine(cluster, 'the cluster to listen', 20_000);
    expect(cluster.stdout()).toBe(`trews cluster: 2 workers listening on port ${port} (nc), ${webPort} (web page) and ${sioPort} (Socket.IO), sharing the room through ${redis.url}\n`);

    const alice = await join(port, 'alice');
    const bob = await join(port, 'bob');
    await alice.untilText('* bob has joined\n');
    // /who lists the users of one process: bob is on the other worker (connections go round-robin).
    await alice.write('/who\n');
    await alice.untilText('* here: alice\n');

    // Socket.IO over WebSocket only: no sticky routing needed.
    const carol = io(`http://127.0.0.1:${sioPort}`, { transports: ['websocket'], forceNew: true, reconnection: false });
    onCleanup(() => carol.disconnect());
    const lines: string[] = [];
    carol.on('line', (line: string) => lines.push(line));
    const carolSees = (line: string) => waitFor(() => lines.includes(line), (wake) => carol.once('line', wake), JSON.stringify(line), 10_000, () => lines.join(' | '));
    await carolSees(GREETING);
    carol.emit('line', 'carol');
    await alice.untilText('* carol has joined\n');
    await bob.untilText('* carol has joined\n');
    carol.emit('line', 'hello from Socket.IO');
    await alice.untilText('<carol> hello from Socket.IO\n');
    await bob.untilText('<carol> hello from Socket.IO\n');
    await bob.write('hi everyone\n');
    await alice.untilText('<bob> hi everyone\n');
    await carolSees('<bob> hi everyone');

    // Long-polling is refused: its requests would be spread over the workers.
    const polling = io(`http://127.0.0.1:${sioPort}`, { transports: ['polling'], forceNew: true, reconnection: false });
    onCleanup(() => polling.disconnect());
    await new Promise<void>((resolve) => polling.once('connect_error', () => resolve()));

    cluster.child.kill('SIGINT');
    await alice.untilText('* the server is shutting down\n');
    await bob.untilText('* the server is shutting down\n');
    await alice.untilClosed();
    await bob.untilClosed();
    expect(await cluster.exited).toEqual({ code: 0, signal: null });
    expect(cluster.stdout()).toMatch(/\nbye\n$/);
    expect(cluster.stderr()).toBe('');
  });
});
