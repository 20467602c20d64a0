// The editor's desk without page jumps: a form marked data-inplace is posted in the
// background and the desk is redrawn where it stands; buttons marked data-confirm ask
// first. Without this script every form still posts and the page comes back at the
// article it acted on.
(function () {
  "use strict";
  function confirmed(form, event) {
    var button = event.submitter || form.querySelector("[data-confirm]");
    var question = button && button.getAttribute("data-confirm");
    return !question || window.confirm(question);
  }
  function redraw(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var desk = document.getElementById("desk");
    var replacement = fresh.getElementById("desk");
    if (!desk || !replacement) { return false; }
    var scroll = window.scrollY;
    desk.replaceWith(replacement);
    window.scrollTo(0, scroll);
    var frame = document.querySelector("iframe.email");
    if (frame) { frame.src = frame.src.split("?")[0] + "?t=" + Date.now(); }
    return true;
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!confirmed(form, event)) { event.preventDefault(); return; }
    if (!form.hasAttribute("data-inplace") || !window.fetch) { return; }
    event.preventDefault();
    var body = new URLSearchParams(new FormData(form));
    if (event.submitter && event.submitter.name) {
      body.append(event.submitter.name, event.submitter.value);
    }
    fetch(form.action, {method: "POST", body: body, credentials: "same-origin"})
      .then(function (answer) { return answer.text(); })
      .then(function (html) { if (!redraw(html)) { form.submit(); } })
      .catch(function () { form.submit(); });
  });
})();
