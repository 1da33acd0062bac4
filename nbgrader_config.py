"""nbgrader configuration of the course (the repository root is the nbgrader course root)."""

import os

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

HERE = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "cours-autograd"
# Absolute path so every nbgrader command, wherever it is started, uses this course's gradebook;
# the sqlite busy timeout lets several grading processes share it.
# A deployment for a whole class (deploiement/) gives a PostgreSQL gradebook shared by instructors and TAs instead.
c.CourseDirectory.db_url = os.environ.get("COURS_AUTOGRAD_GRADEBOOK_URL") or (
    "sqlite:///" + os.path.join(HERE, "gradebook.db") + "?timeout=60"
)
if os.environ.get("COURS_AUTOGRAD_FORMGRADER") == "1":
    # The deployment's formgrader service: its « Autograde » would run student code unsandboxed (deploiement/).
    c.Autograde.autograde_preprocessors = ["autograder.grading.formgrader_refusal.RefuseUnsandboxedAutograde"]

# French stubs in the student version.
c.ClearSolutions.code_stub = {"python": "# VOTRE CODE ICI\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "VOTRE RÉPONSE ICI"

# Per-cell time limit (seconds) when validating or autograding.
c.Execute.timeout = 60

# nbgrader gives 0 to a test cell with any stderr output: PyTorch warnings must not cost points. Both settings are
# needed (tests/test_nbgrader_grading.py::test_warning_on_stderr_costs_no_point).
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"Warning"

# A deleted test cell is put back and graded instead of staying "needs manual grade" (nbgrader #1682).
c.OverwriteCells.add_missing_cells = True
c.OverwriteCells.missing_cell_notification = (
    "Cette cellule (id : {cell_id}) manquait dans la copie rendue ; nbgrader l'a rétablie.\n\n"
)

# No late penalty by default: the instructor decides.
c.LateSubmissionPlugin.penalty_method = "none"

# French banners for `nbgrader validate` (the « Validate » button).
c.Validator.failed_warning = (
    "ÉCHEC DE LA VALIDATION SUR {num_failed} CELLULE(S) ! Si vous rendez votre devoir en l'état, "
    "vous n'aurez pas tous les points.\n"
)
c.Validator.changed_warning = (
    "LE CONTENU DE {num_changed} CELLULE(S) DE TEST A ÉTÉ MODIFIÉ ! Même si les tests passent maintenant, "
    "la correction utilisera les cellules d'origine.\n"
)
c.Validator.type_changed_warning = (
    "LE TYPE DE {num_changed} CELLULE(S) A ÉTÉ MODIFIÉ ! Même si les tests passent maintenant, "
    "la correction utilisera les cellules d'origine.\n"
)
c.Validator.passed_warning = "LE NOTEBOOK PASSE {num_passed} CELLULE(S) DE TEST !\n"

# Feedback in French (our copy of nbgrader's template) without the hidden tests' source.
import autograder  # noqa: E402 - the course package is installed in the same environment

_NBGRADER_TEMPLATES = os.path.join(
    os.path.dirname(__import__("nbgrader").__file__), "server_extensions", "formgrader", "templates"
)
# Two pages render a student's copy with nbconvert's HTMLExporter: the feedback (GenerateFeedback's exporter, our
# French template) and the formgrader's manual grading page (nbgrader's template, with the copy's Markdown cells
# sanitized: tests/test_attaques_etudiant.py::test_no_script_of_a_copy_runs_in_the_formgrader_manual_grading_page).
c.GenerateFeedback.HTMLExporter.template_name = "feedback_fr"
c.GenerateFeedback.exporter_class = "autograder.grading.feedback_exporter.FeedbackExporter"
c.HTMLExporter.template_name = "formgrade_sur"
c.HTMLExporter.extra_template_basedirs = [
    os.path.join(os.path.dirname(autograder.__file__), "templates"),
    _NBGRADER_TEMPLATES,
]
c.HTMLExporter.extra_template_paths = [_NBGRADER_TEMPLATES]  # formgrade_sur extends 'formgrade/index.html.j2'
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
# A copy's HTML outputs and Markdown cells are the student's: sanitized (no script, no event handler) in the
# feedback pages and in the formgrader, which shows them in the instructor's browser.
c.HTMLExporter.sanitize_html = True
c.HTMLExporter.filters = {"clean_html": "autograder.grading.safe_html.clean"}
