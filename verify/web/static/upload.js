// Batch and ledger uploads with a progress bar; without this script the form posts as is.
"use strict";
for (const form of document.querySelectorAll("form.upload")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const bar = document.getElementById(form.dataset.progress);
    const note = form.querySelector(".progress-text");
    const button = form.querySelector("button");
    const xhr = new XMLHttpRequest();
    bar.hidden = false;
    note.hidden = false;
    button.disabled = true;
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) { bar.value = Math.round((e.loaded / e.total) * 90); }
    });
    xhr.upload.addEventListener("load", () => {
      bar.removeAttribute("value");  // indeterminate while the rows are checked
      note.textContent = "…";
    });
    xhr.addEventListener("load", () => {
      if (xhr.responseURL && new URL(xhr.responseURL).pathname !== new URL(form.action).pathname) {
        window.location.assign(xhr.responseURL);
        return;
      }
      const page = new DOMParser().parseFromString(xhr.responseText, "text/html");
      document.querySelector("main").replaceWith(page.querySelector("main"));
    });
    xhr.addEventListener("error", () => { button.disabled = false; note.textContent = "!"; });
    xhr.open("POST", form.action);
    xhr.send(new FormData(form));
  });
}
