// A Node app as people write them: it knows only $PORT. Every path
// answers "gen=G worker=W pid=P"; SIGTERM closes the server and exits once
// the open connections are done.
const http = require("http");
const body = `gen=${process.env.ROTINI_GENERATION} worker=${process.env.ROTINI_WORKER} pid=${process.pid}\n`;
const server = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(body);
});
server.listen(Number(process.env.PORT), "127.0.0.1");
process.on("SIGTERM", () => {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
});
