// Runs before the ipywidgets bundle (see book/_ext/dlt_book.py).
(function () {
  // the widget bundle's web fonts lie next to it in _static/widgets/
  var here = document.currentScript && document.currentScript.src;
  if (here) {
    var dir = new URL("widgets/", here).href;
    window.__jupyter_widgets_assets_path__ = dir;
    // RequireJS reads a global `require` object as its configuration when it loads: map the
    // bundle's module ids (which webpack uses as its public path) to the same folder
    if (typeof window.require === "undefined") {
      window.require = { paths: { "@jupyter-widgets/html-manager/dist": dir.replace(/\/$/, "") } };
    }
  }
  // ipywidgets 8 typesets labels with MathJax 2's Hub.Queue; the book uses MathJax 3.
  function shim(mj) {
    if (mj && typeof mj === "object" && !mj.Hub) {
      mj.Hub = {
        Queue: function (job) {
          var el = job && job[2];
          var M = window.MathJax;
          if (el && M && typeof M.typesetPromise === "function") {
            M.typesetPromise([el]).catch(function () {});
          }
        },
      };
    }
    return mj;
  }
  var current = shim(window.MathJax);
  Object.defineProperty(window, "MathJax", {
    configurable: true,
    get: function () { return current; },
    set: function (value) { current = shim(value); },
  });
})();
