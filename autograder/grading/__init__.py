"""Grading pipeline over nbgrader: intake of submissions, sandboxed parallel execution, reports."""
