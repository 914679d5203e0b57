/**
 * A real redis-server (Debian's `redis-server` package) on a free loopback port, with no
 * persistence, for tests and benchmarks: started, stopped (to test an outage) and started
 * again on the same port. No vitest here, so the benchmarks can use it too.
 */
import net from 'node:net';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { freePort } from './free-port.js';

/** Whether `redis-server` is installed (tests that need it skip, saying so, when it is not). */
export const hasRedisServer = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

export const NO_REDIS = 'redis-server is not installed (Debian: apt-get install redis-server): skipping the Redis tests';

export class RedisServer {
  #child: ChildProcess | null = null;

  private constructor(readonly port: number) {}

  /** `redis://127.0.0.1:<port>` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Start one on a free port; resolves once it accepts connections. */
  static async start(): Promise<RedisServer> {
    const server = new RedisServer(await freePort());
    await server.start();
    return server;
  }

  /** (Re)start on this server's port. */
  start(ms = 10_000): Promise<void> {
    if (this.#child !== null) throw new Error('redis-server is already running');
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
    this.#child = child;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`redis-server on port ${this.port} did not answer within ${ms} ms`)), ms);
      const finish = (err?: Error) => {
        clearTimeout(timer);
        child.off('exit', onExit);
        if (err) reject(err);
        else resolve();
      };
      const onExit = (code: number | null) => finish(new Error(`redis-server on port ${this.port} exited (${code}) before accepting connections`));
      child.once('exit', onExit);
      // Ready once a PING gets its PONG (redis-server prints nothing useful at loglevel warning).
      const probe = () => {
        if (this.#child !== child) return;
        const socket = net.connect(this.port, '127.0.0.1');
        socket.once('data', (reply) => {
          socket.destroy();
          if (reply.toString().startsWith('+PONG')) finish();
          else setTimeout(probe, 20);
        });
        socket.once('connect', () => socket.write('PING\r\n'));
        socket.once('error', () => setTimeout(probe, 20));
      };
      probe();
    });
  }

  /** Stop it (SIGKILL: an outage, not a shutdown); resolves once it has exited. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }
}
