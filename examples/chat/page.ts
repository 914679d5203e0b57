/** The chat's web page: a WebSocket client in a few lines of browser JavaScript. */
export const CHAT_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>trews chat</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }
  #log { border: 1px solid #ccc; height: 60vh; overflow-y: auto; padding: .5rem; white-space: pre-wrap; font-family: ui-monospace, monospace; }
  form { display: flex; gap: .5rem; margin-top: .5rem; }
  #line { flex: 1; font: inherit; padding: .3rem; }
  #status { color: #666; }
</style>
</head>
<body>
<h1>trews chat <small id="status">connecting…</small></h1>
<div id="log" aria-live="polite"></div>
<form id="form"><input id="line" autocomplete="off" autofocus placeholder="your nickname, then messages or /help"><button>Send</button></form>
<script>
  const log = document.getElementById('log');
  const status = document.getElementById('status');
  const input = document.getElementById('line');
  const socket = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat');
  let partial = '';
  function show(line) {
    const div = document.createElement('div');
    div.className = 'line';
    div.textContent = line;
    log.append(div);
    log.scrollTop = log.scrollHeight;
  }
  socket.onopen = () => { status.textContent = 'connected'; };
  // The server sends lines ending in "\\n"; a message may hold several.
  socket.onmessage = (event) => {
    const lines = (partial + event.data).split('\\n');
    partial = lines.pop();
    lines.forEach(show);
  };
  socket.onclose = (event) => { status.textContent = 'closed (' + event.code + ')'; };
  document.getElementById('form').onsubmit = (event) => {
    event.preventDefault();
    if (socket.readyState === WebSocket.OPEN) socket.send(input.value + '\\n');
    input.value = '';
  };
</script>
</body>
</html>
`;
