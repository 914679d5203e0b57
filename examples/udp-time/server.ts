/**
 * A UDP time service: send the line `time` and get the current time back (ISO 8601); any
 * other line is echoed. Lines are framed per sender, so a line split over several datagrams
 * still arrives whole, and two clients never mix their halves.
 *
 * In your own project, import from 'trews' instead of '../../src/index.js'.
 */
import { Datagram, type DatagramOptions, type InetAddress } from '../../src/index.js';

export class TimeService extends Datagram {
  override readDelimiter = '\n';
  override encoding = 'utf8';

  constructor(options: DatagramOptions = {}) {
    // A line nobody finishes is dropped after 5 s; no client gets more than 1 KiB per line.
    super({ senderTimeout: 5000, bufferSize: 1024, ...options });
  }

  override onRead(line: string, address: InetAddress): void {
    const text = line.endsWith('\r') ? line.slice(0, -1) : line; // nc on some systems sends CRLF
    this.write(`${text.trim() === 'time' ? new Date().toISOString() : text}\n`, address);
  }
}
