// Ask before a destructive form acts: any <form data-confirm="…"> (delete, revoke, remove,
// stop) shows its message in window.confirm on submit. Listening in the capture phase on the
// document runs before htmx's own submit listener on the form, so one mechanism covers plain
// and htmx-submitted forms; dismissing stops the event before either sends anything.
(function () {
  "use strict";
  document.addEventListener(
    "submit",
    function (event) {
      var form = event.target;
      if (!(form instanceof HTMLFormElement)) return;
      var message = form.getAttribute("data-confirm");
      if (message && !window.confirm(message)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true
  );
})();
