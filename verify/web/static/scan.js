// The scan page: read a QR from the camera, on the device where the browser can
// (BarcodeDetector), else by sending a frame to the service; show the verdict card.
"use strict";
(function () {
  const root = document.getElementById("scan");
  const video = document.getElementById("camera");
  const state = document.getElementById("scan-state");
  const slot = document.getElementById("verdict-slot");
  const history = document.getElementById("history");
  const startButton = document.getElementById("start");
  const photo = document.getElementById("photo");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const text = (name) => root.dataset["t" + name.replace(/(^|-)(\w)/g, (_, __, c) => c.toUpperCase())] || "";
  const HISTORY_KEY = "scan-history";
  const FRAME_MS = 700;
  const SAME_CODE_MS = 5000;
  let detector = null;
  let busy = false;
  let last = { payload: null, at: 0 };

  function say(message) { state.textContent = message; }

  function remember(entry) {
    const items = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
    items.unshift(entry);
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(items.slice(0, 10)));
    drawHistory();
  }

  function drawHistory() {
    history.replaceChildren();
    for (const item of JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]")) {
      const li = document.createElement("li");
      li.textContent = item.time + " · " + item.status + (item.what ? " · " + item.what : "");
      history.appendChild(li);
    }
  }

  function show(answer) {
    const codes = answer.codes || [answer];
    if (!codes.length || answer.outcome === "no_qr_found") { return false; }
    slot.innerHTML = codes.map((c) => c.card_html).join("");
    for (const card of slot.querySelectorAll(".verdict")) {
      const status = card.querySelector(".status strong");
      const fact = card.querySelector(".facts dd");
      remember({ time: new Date().toLocaleTimeString(), status: status ? status.textContent : "",
                 what: fact ? fact.textContent : "" });
    }
    if (navigator.vibrate) { navigator.vibrate(80); }
    return true;
  }

  async function post(url, body, type) {
    const response = await fetch(url, {
      method: "POST", body, credentials: "same-origin",
      headers: { "Content-Type": type, "X-CSRF-Token": csrf },
    });
    const answer = await response.json();
    if (!response.ok) { throw new Error((answer.error && answer.error.message) || response.status); }
    return answer;
  }

  // A link QR of ours (verify/web/link_qr.py) opens the desk page it names.
  function openLink(payload) {
    if (!payload.startsWith(window.location.origin + "/web/desk?")) { return false; }
    window.location.assign(payload);
    return true;
  }

  async function checkText(payload) {
    if (openLink(payload)) { return; }
    const now = Date.now();
    if (payload === last.payload && now - last.at < SAME_CODE_MS) { return; }
    last = { payload, at: now };
    say(text("checking"));
    show(await post("/web/scan/text", JSON.stringify({ payload }), "application/json"));
    say(text("reading") + " (" + text("device") + ")");
  }

  async function checkImage(blob) {
    say(text("checking"));
    const answer = await post("/web/scan/photo", blob, blob.type || "image/jpeg");
    for (const code of answer.codes || []) {
      if (code.payload && code.payload.raw && openLink(code.payload.raw)) { return true; }
    }
    const found = show(answer);
    if (found) { last = { payload: answer.codes.map((c) => c.payload.raw).join("|"), at: Date.now() }; }
    return found;
  }

  function frame() {
    const canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.85));
  }

  async function tick() {
    if (busy || video.readyState < 2) { return; }
    busy = true;
    try {
      if (detector) {
        const codes = await detector.detect(video);
        if (codes.length) { await checkText(codes[0].rawValue); }
      } else if (Date.now() - last.at >= SAME_CODE_MS) {
        const found = await checkImage(await frame());
        say(text(found ? "reading" : "none") + " (" + text("server") + ")");
      }
    } catch (error) {
      say(text("failed") + " " + error.message);
    } finally {
      busy = false;
    }
  }

  async function chooseDecoder() {
    if ("BarcodeDetector" in window) {
      try {
        const formats = await window.BarcodeDetector.getSupportedFormats();
        if (formats.includes("qr_code")) {
          detector = new window.BarcodeDetector({ formats: ["qr_code"] });
        }
      } catch (error) { detector = null; }
    }
    root.dataset.decoder = detector ? "device" : "server";
  }

  async function start() {
    await chooseDecoder();
    try {
      video.srcObject = await navigator.mediaDevices.getUserMedia(
        { video: { facingMode: "environment" }, audio: false });
      await video.play();
    } catch (error) {
      say(text("no-camera"));
      return;
    }
    startButton.hidden = true;
    say(text("reading") + " (" + text(detector ? "device" : "server") + ")");
    setInterval(tick, detector ? 250 : FRAME_MS);
  }

  startButton.addEventListener("click", start);
  photo.addEventListener("change", async () => {
    const file = photo.files[0];
    if (!file) { return; }
    try {
      if (!(await checkImage(file))) { say(text("none")); } else { say(""); }
    } catch (error) {
      say(text("failed") + " " + error.message);
    }
    photo.value = "";
  });
  drawHistory();
})();
