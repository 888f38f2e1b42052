"""Layout builders: take data, return Dash components or Plotly figures. No store access."""
