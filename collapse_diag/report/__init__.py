"""What an analysis produces, declared once: the report's schema, the Report, its values.

``schema`` (every field of report.json), ``report`` (:class:`Report`,
:class:`ReportSection`, atomic writes), ``headlines`` (short names of the
headline figures), ``formats`` (the document formats), ``values`` (reading
figures back out of a report), ``encodings_file`` (encodings.npz beside it).
Below ``diagnostics``: each diagnostic returns a section of this schema.
"""
