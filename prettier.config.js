// Prettier, configured to the style the code was already written in, so that adopting it changed
// as little as possible: double quotes, semicolons, trailing commas, two spaces, and long lines.
// printWidth 160: of the widths tried (120-180), 155-160 reformat the fewest lines; the code
// keeps one statement on one line up to about that width. What is not formatted: .prettierignore.
/** @type {import("prettier").Config} */
export default {
  printWidth: 160,
  trailingComma: "all",
  arrowParens: "always",
};
